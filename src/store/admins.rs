//! Studio admin users.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::{Store, StoreError};

/// A studio admin who can log in to the admin page and the HTTP API.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AdminUser {
    pub username: String,
    /// argon2id PHC string.
    pub phc: String,
    pub role: String,
    pub created_ms: i64,
}

impl Store {
    pub fn admin(&self, username: &str) -> Result<Option<AdminUser>, StoreError> {
        Self::get(&self.t()?.admins, username.as_bytes())
    }

    pub fn admins(&self) -> Result<Vec<AdminUser>, StoreError> {
        self.t()?.admins.iter().map(|item| decode(&item?.1)).collect()
    }

    /// Creates or replaces an admin user; durable on return.
    pub async fn put_admin(&self, user: &AdminUser) -> Result<(), StoreError> {
        self.write(|| {
            self.t()?.admins.insert(user.username.as_bytes(), encode(user))?;
            Ok(())
        })
        .await
    }

    /// Removes an admin user; `Ok(false)` if there was none. Durable on return.
    pub async fn remove_admin(&self, username: &str) -> Result<bool, StoreError> {
        self.write(|| Ok(self.t()?.admins.remove(username.as_bytes())?.is_some())).await
    }
}
