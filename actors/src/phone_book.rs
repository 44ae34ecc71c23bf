//! One phone number serves one organization at a time (CONTRACT §7).
//!
//! A plain mutex, not an actor: claiming is a map look-up, and the org actor must be
//! able to decide inside its handler without waiting on another mailbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::OrgId;

#[derive(Clone, Default)]
pub(crate) struct PhoneBook {
    owners: Arc<Mutex<HashMap<String, OrgId>>>,
}

impl PhoneBook {
    /// Claims `phone` for `org`; on refusal returns the org that holds it.
    pub(crate) fn claim(&self, phone: &str, org: &OrgId) -> Result<(), OrgId> {
        let mut owners = self.owners.lock().unwrap();
        match owners.get(phone) {
            Some(owner) if owner != org => Err(owner.clone()),
            _ => {
                owners.insert(phone.to_owned(), org.clone());
                Ok(())
            }
        }
    }

    /// Releases every number `org` holds.
    pub(crate) fn release(&self, org: &OrgId) {
        self.owners.lock().unwrap().retain(|_, owner| owner != org);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_has_one_owner_until_released() {
        let book = PhoneBook::default();
        let a = OrgId::parse("a").unwrap();
        let b = OrgId::parse("b").unwrap();
        book.claim("57300", &a).unwrap();
        book.claim("57300", &a).unwrap();
        assert_eq!(book.claim("57300", &b), Err(a.clone()));
        book.release(&a);
        book.claim("57300", &b).unwrap();
    }
}
