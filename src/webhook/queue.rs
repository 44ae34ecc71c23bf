//! One organization's waiting events: bounded, in order, and when full the oldest
//! `session.qr` makes room first (a newer QR replaces it anyway), then the oldest
//! event of any kind.

use std::collections::VecDeque;

use super::event::WebhookEvent;

#[derive(Debug)]
pub struct BoundedQueue {
    items: VecDeque<WebhookEvent>,
    capacity: usize,
}

impl BoundedQueue {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            items: VecDeque::with_capacity(capacity.min(64)),
            capacity,
        }
    }

    /// Appends `event`; returns the event pushed out to make room, if any.
    pub fn push(&mut self, event: WebhookEvent) -> Option<WebhookEvent> {
        let evicted = if self.items.len() >= self.capacity {
            match self.items.iter().position(WebhookEvent::is_qr) {
                Some(i) => self.items.remove(i),
                None => self.items.pop_front(),
            }
        } else {
            None
        };
        self.items.push_back(event);
        evicted
    }

    /// The oldest waiting event.
    pub fn pop(&mut self) -> Option<WebhookEvent> {
        self.items.pop_front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;
    use wa_actors::{OrgId, SessionStatus};

    use super::super::event::Data;
    use super::*;

    fn ev(name: &'static str) -> WebhookEvent {
        WebhookEvent {
            name,
            event_id: super::super::event::new_event_id(),
            organization_id: OrgId::parse("2").unwrap(),
            status: SessionStatus::Connected,
            timestamp: chrono::Utc::now(),
            data: if name == "session.qr" {
                Data::Qr {
                    code: "x".into(),
                    pairing_code: None,
                }
            } else {
                Data::Json(Map::new())
            },
        }
    }

    fn names(q: &mut BoundedQueue) -> Vec<&'static str> {
        std::iter::from_fn(|| q.pop()).map(|e| e.name).collect()
    }

    #[test]
    fn keeps_order_below_capacity() {
        let mut q = BoundedQueue::new(3);
        for name in ["session.qr", "session.connected", "message.sent"] {
            assert!(q.push(ev(name)).is_none());
        }
        assert_eq!(q.len(), 3);
        assert_eq!(
            names(&mut q),
            ["session.qr", "session.connected", "message.sent"]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn when_full_the_oldest_qr_goes_first() {
        let mut q = BoundedQueue::new(3);
        q.push(ev("session.reconnecting"));
        q.push(ev("session.qr"));
        q.push(ev("session.qr"));
        let out = q.push(ev("message.sent")).unwrap();
        assert_eq!(out.name, "session.qr");
        let out = q.push(ev("message.failed")).unwrap();
        assert_eq!(out.name, "session.qr");
        // No QR left: the oldest of any kind.
        let out = q.push(ev("session.cleaned")).unwrap();
        assert_eq!(out.name, "session.reconnecting");
        assert_eq!(
            names(&mut q),
            ["message.sent", "message.failed", "session.cleaned"]
        );
    }

    #[test]
    fn the_newest_qr_survives_a_full_queue_of_qrs() {
        let mut q = BoundedQueue::new(2);
        let (a, b, c) = (ev("session.qr"), ev("session.qr"), ev("session.qr"));
        let c_id = c.event_id.clone();
        q.push(a);
        q.push(b);
        q.push(c);
        q.pop();
        assert_eq!(q.pop().unwrap().event_id, c_id);
    }
}
