//! Whether a number is on WhatsApp (CONTRACT §14): asked of the org's live
//! connection, and remembered per org for a few minutes so that the API's
//! `check-number` and the outbox lane's check before a first attempt do not ask
//! WhatsApp again and again about the same patient.
//!
//! The cache is small by design: at most [`PER_ORG`] numbers per org, the least
//! recently used dropped first, and an answer is trusted for [`TTL`] only (a
//! patient may install WhatsApp; a number may change hands).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hashlink::LruCache;
use tokio::time::Instant;

use crate::OrgId;
use crate::connection::{Connection, ConnectionError};

/// How long an answer is trusted.
pub const TTL: Duration = Duration::from_secs(5 * 60);
/// Numbers remembered per org.
pub const PER_ORG: usize = 1024;
/// How long one question to WhatsApp may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// One org's answers: number → (on WhatsApp, when asked).
type OrgAnswers = LruCache<String, (bool, Instant)>;

/// The answers of every org, each org's bounded on its own.
#[derive(Default)]
pub struct NumberCache {
    orgs: Mutex<HashMap<OrgId, OrgAnswers>>,
}

impl NumberCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The remembered answer for `phone` (digits), if still fresh.
    pub fn get(&self, org: &OrgId, phone: &str) -> Option<bool> {
        let mut orgs = self.orgs.lock().unwrap_or_else(PoisonError::into_inner);
        let cache = orgs.get_mut(org)?;
        match cache.get(phone) {
            Some(&(on_whatsapp, at)) if at.elapsed() < TTL => Some(on_whatsapp),
            Some(_) => {
                cache.remove(phone);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, org: &OrgId, phone: &str, on_whatsapp: bool) {
        let mut orgs = self.orgs.lock().unwrap_or_else(PoisonError::into_inner);
        orgs.entry(org.clone())
            .or_insert_with(|| LruCache::new(PER_ORG))
            .insert(phone.to_owned(), (on_whatsapp, Instant::now()));
    }

    /// The answer for `phone`: remembered, or asked of `conn` (at most
    /// [`CHECK_TIMEOUT`]) and remembered. A failed question is not remembered.
    pub async fn check(
        &self,
        org: &OrgId,
        conn: &dyn Connection,
        phone: &str,
    ) -> Result<bool, ConnectionError> {
        if let Some(known) = self.get(org, phone) {
            return Ok(known);
        }
        let on_whatsapp = tokio::time::timeout(CHECK_TIMEOUT, conn.is_on_whatsapp(phone))
            .await
            .map_err(|_| ConnectionError::TimedOut(CHECK_TIMEOUT))??;
        self.put(org, phone, on_whatsapp);
        Ok(on_whatsapp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str) -> OrgId {
        OrgId::parse(id).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_kept_per_org_for_the_ttl() {
        let cache = NumberCache::new();
        let (a, b) = (org("2"), org("7"));
        cache.put(&a, "573001112233", false);
        assert_eq!(cache.get(&a, "573001112233"), Some(false));
        assert_eq!(cache.get(&b, "573001112233"), None, "another org's answer");
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        assert_eq!(cache.get(&a, "573001112233"), Some(false));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.get(&a, "573001112233"), None, "stale");
    }

    #[test]
    fn each_org_keeps_at_most_its_bound() {
        let cache = NumberCache::new();
        let a = org("2");
        for i in 0..PER_ORG + 10 {
            cache.put(&a, &format!("57300{i:07}"), true);
        }
        let orgs = cache.orgs.lock().unwrap();
        assert_eq!(orgs[&a].len(), PER_ORG);
        drop(orgs);
        assert_eq!(cache.get(&a, "573000000000"), None, "the oldest went first");
        assert_eq!(
            cache.get(&a, &format!("57300{:07}", PER_ORG + 9)),
            Some(true)
        );
    }
}
