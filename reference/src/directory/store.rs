//! SQLite storage of the directory: each user and group is one JSON document (the
//! record exactly as the API answers with it) plus a few indexed columns for lookups.
//!
//! One connection behind one `std::sync::Mutex`, locked only for the statements of a
//! single operation (callers run operations on tokio's blocking pool, never across an
//! `.await`). Rows carry an `AUTOINCREMENT` sequence number that orders lists by
//! creation and anchors the paging cursors. Case-insensitive uniqueness of usernames
//! and emails is enforced by unique indexes on lowercased key columns (Unicode-aware,
//! unlike `COLLATE NOCASE`); a soft-deleted user keeps its username and email.
//!
//! A write that changes a record gives it a new `etag` and `modifiedAt`; a write that
//! would change nothing (an unsuspend of an active user, an empty patch) leaves both.

use std::sync::{Mutex, MutexGuard};

use rusqlite::types::Value as SqlValue;
use rusqlite::{
    Connection, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter,
};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::ids::{Collection, encode_cursor, new_etag, new_uuid};
use super::merge::merge_patch;
use super::problem::FieldError;
use super::records::{Group, GroupFields, User, UserFields};
use super::{Database, DirectoryError};

/// `PRAGMA user_version` of the schema below; a newer database is refused.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS directory_users (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    username_key TEXT    NOT NULL UNIQUE,
    email_key    TEXT    UNIQUE,
    external_key TEXT,
    deleted      INTEGER NOT NULL,
    doc          TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS directory_users_external_key ON directory_users (external_key);

CREATE TABLE IF NOT EXISTS directory_groups (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT    NOT NULL UNIQUE,
    name_key TEXT    NOT NULL,
    doc      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS directory_groups_name ON directory_groups (name_key);
";

/// A store failure, converted to the wire problem in `problem.rs`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("username `{0}` is taken")]
    UsernameTaken(String),
    #[error("email `{0}` is taken")]
    EmailTaken(String),
    /// The merged document breaks a rule, or names a record that does not exist.
    #[error("invalid fields: {0:?}")]
    Invalid(Vec<FieldError>),
    #[error("store mutex poisoned")]
    Poisoned,
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A stored document that no longer reads back as a record.
    #[error("corrupt stored record: {0}")]
    Corrupt(String),
    #[error("cannot format the current time: {0}")]
    Clock(#[from] time::error::Format),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One page of a list and the cursor of the next one, `null` on the last page.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next: Option<String>,
}

/// Where a page starts and how long it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageRequest {
    /// Sequence number of the last row already seen; 0 for the first page.
    pub(crate) after: i64,
    pub(crate) limit: u32,
}

#[derive(Debug, Default)]
pub(crate) struct UserFilter {
    pub(crate) username: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) external_key: Option<String>,
    pub(crate) group_id: Option<String>,
    pub(crate) deleted: bool,
}

#[derive(Debug, Default)]
pub(crate) struct GroupFilter {
    pub(crate) name: Option<String>,
}

const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Now, as RFC 3339 UTC with milliseconds: `2026-11-23T17:40:00.123Z`.
fn now() -> Result<String> {
    Ok(OffsetDateTime::now_utc().format(TIMESTAMP)?)
}

/// The lookup key of a case-insensitive value.
fn key(text: &str) -> String {
    text.to_lowercase()
}

fn user_not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("no user with id `{id}`"))
}

fn group_not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("no group with id `{id}`"))
}

fn parse_doc<T: serde::de::DeserializeOwned>(doc: &str) -> Result<T> {
    serde_json::from_str(doc).map_err(|err| StoreError::Corrupt(err.to_string()))
}

fn to_doc(record: &impl Serialize) -> Result<String> {
    serde_json::to_string(record).map_err(|err| StoreError::Corrupt(err.to_string()))
}

/// Maps a unique-index violation to its 409; anything else stays a database error.
fn uniqueness(err: rusqlite::Error, user: &User) -> StoreError {
    let rusqlite::Error::SqliteFailure(failure, Some(message)) = &err else {
        return err.into();
    };
    if failure.extended_code != rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE {
        return err.into();
    }
    if message.contains("username_key") {
        StoreError::UsernameTaken(user.username.clone())
    } else if message.contains("email_key") {
        StoreError::EmailTaken(user.contact.email.clone().unwrap_or_default())
    } else {
        err.into()
    }
}

/// The `WHERE` clauses of a list query and the values of their `?` placeholders.
#[derive(Default)]
struct Filters {
    clauses: Vec<&'static str>,
    values: Vec<SqlValue>,
}

impl Filters {
    /// `clause` (one `?`) bound to `value`. Clauses are constants of this file, never
    /// request data.
    fn add(&mut self, clause: &'static str, value: SqlValue) {
        self.clauses.push(clause);
        self.values.push(value);
    }

    fn text(&mut self, clause: &'static str, value: Option<String>) {
        if let Some(value) = value {
            self.add(clause, SqlValue::Text(value));
        }
    }
}

/// The store: one SQLite connection. Cheap to share behind an `Arc`.
pub(crate) struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database and its schema.
    pub(crate) fn open(database: &Database) -> Result<Store, DirectoryError> {
        let opened = match database {
            Database::Memory => Connection::open_in_memory(),
            Database::File(path) => Connection::open(path),
        };
        let mut conn = opened.map_err(|source| DirectoryError::Open {
            database: database.clone(),
            source,
        })?;
        if let Database::File(_) = database {
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
                .map_err(DirectoryError::Schema)?;
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(DirectoryError::Schema)?;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(DirectoryError::Schema)?;
        let found: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(DirectoryError::Schema)?;
        if found > SCHEMA_VERSION {
            return Err(DirectoryError::SchemaVersion {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        tx.execute_batch(SCHEMA).map_err(DirectoryError::Schema)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(DirectoryError::Schema)?;
        tx.commit().map_err(DirectoryError::Schema)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    #[cfg(test)]
    pub(crate) fn poison_for_test(&self) {
        let _ = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _guard = self.conn.lock();
                    panic!("poisoning the store mutex on purpose");
                })
                .join()
        });
    }

    /// One page of `table`'s documents matching every filter, in creation order.
    /// `table` goes into the SQL text, hence `'static`.
    fn page<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        collection: Collection,
        filters: Filters,
        page: PageRequest,
    ) -> Result<Page<T>> {
        let Filters {
            mut clauses,
            mut values,
        } = filters;
        clauses.push("seq > ?");
        values.push(SqlValue::Integer(page.after));
        values.push(SqlValue::Integer(i64::from(page.limit) + 1));
        let sql = format!(
            "SELECT seq, doc FROM {table} WHERE {} ORDER BY seq LIMIT ?",
            clauses.join(" AND ")
        );
        let conn = self.lock()?;
        let mut statement = conn.prepare_cached(&sql)?;
        let mut rows = statement
            .query_map(params_from_iter(values.iter()), |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = match rows.last() {
            Some((seq, _)) if more => Some(encode_cursor(collection, *seq)),
            _ => None,
        };
        let items = rows
            .iter()
            .map(|(_, doc)| parse_doc(doc))
            .collect::<Result<Vec<T>>>()?;
        Ok(Page { items, next })
    }

    // ───────────────────────────── users ─────────────────────────────

    pub(crate) fn list_users(&self, filter: UserFilter, page: PageRequest) -> Result<Page<User>> {
        let mut filters = Filters::default();
        filters.add("deleted = ?", SqlValue::Integer(i64::from(filter.deleted)));
        filters.text("username_key = ?", filter.username.as_deref().map(key));
        filters.text("email_key = ?", filter.email.as_deref().map(key));
        filters.text("external_key = ?", filter.external_key);
        filters.text(
            "EXISTS (SELECT 1 FROM json_each(doc, '$.groupIds') WHERE json_each.value = ?)",
            filter.group_id,
        );
        self.page("directory_users", Collection::Users, filters, page)
    }

    pub(crate) fn get_user(&self, id: &str) -> Result<User> {
        let conn = self.lock()?;
        existing_user(&conn, id)
    }

    pub(crate) fn create_user(&self, fields: UserFields) -> Result<User> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let at = now()?;
        let mut user = User {
            id: new_uuid(),
            username: String::new(),
            profile: Default::default(),
            contact: Default::default(),
            manager: None,
            external_key: None,
            suspended: false,
            deleted: false,
            group_ids: Vec::new(),
            created_at: at.clone(),
            modified_at: at,
            etag: new_etag(),
        };
        check_references(&tx, &user, &fields)?;
        user.set_fields(fields);
        tx.execute(
            "INSERT INTO directory_users \
             (id, username_key, email_key, external_key, deleted, doc) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                user.id,
                key(&user.username),
                user.contact.email.as_deref().map(key),
                user.external_key,
                user.deleted,
                to_doc(&user)?,
            ],
        )
        .map_err(|err| uniqueness(err, &user))?;
        tx.commit()?;
        Ok(user)
    }

    /// Applies a merge patch (whose top-level keys the caller has checked) to a user.
    pub(crate) fn patch_user(&self, id: &str, patch: Map<String, Value>) -> Result<User> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let current = existing_user(&tx, id)?;
        let mut document = current.fields().document();
        merge_patch(&mut document, &Value::Object(patch));
        let fields = UserFields::from_document(&document).map_err(StoreError::Invalid)?;
        if fields == current.fields() {
            return Ok(current);
        }
        check_references(&tx, &current, &fields)?;
        let mut user = current;
        user.set_fields(fields);
        write_user(&tx, user).and_then(|user| {
            tx.commit()?;
            Ok(user)
        })
    }

    /// Soft delete: the record stays, marked `deleted`. Deleting twice is not an error.
    pub(crate) fn delete_user(&self, id: &str) -> Result<()> {
        self.change_user(id, |user| user.deleted = true).map(drop)
    }

    pub(crate) fn set_suspended(&self, id: &str, suspended: bool) -> Result<User> {
        self.change_user(id, |user| user.suspended = suspended)
    }

    /// Loads a user, applies `change`, and writes it back only if it changed.
    fn change_user(&self, id: &str, change: impl FnOnce(&mut User)) -> Result<User> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let current = existing_user(&tx, id)?;
        let mut user = current.clone();
        change(&mut user);
        if user == current {
            return Ok(current);
        }
        let user = write_user(&tx, user)?;
        tx.commit()?;
        Ok(user)
    }

    // ───────────────────────────── groups ─────────────────────────────

    pub(crate) fn list_groups(
        &self,
        filter: GroupFilter,
        page: PageRequest,
    ) -> Result<Page<Group>> {
        let mut filters = Filters::default();
        filters.text("name_key = ?", filter.name.as_deref().map(key));
        self.page("directory_groups", Collection::Groups, filters, page)
    }

    pub(crate) fn get_group(&self, id: &str) -> Result<Group> {
        let conn = self.lock()?;
        existing_group(&conn, id)
    }

    pub(crate) fn create_group(&self, fields: GroupFields) -> Result<Group> {
        let conn = self.lock()?;
        let at = now()?;
        let group = Group {
            id: new_uuid(),
            name: fields.name,
            description: fields.description,
            created_at: at.clone(),
            modified_at: at,
            etag: new_etag(),
        };
        conn.execute(
            "INSERT INTO directory_groups (id, name_key, doc) VALUES (?1, ?2, ?3)",
            params![group.id, key(&group.name), to_doc(&group)?],
        )?;
        Ok(group)
    }

    pub(crate) fn patch_group(&self, id: &str, patch: Map<String, Value>) -> Result<Group> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let current = existing_group(&tx, id)?;
        let mut document = current.fields().document();
        merge_patch(&mut document, &Value::Object(patch));
        let fields = GroupFields::from_document(&document).map_err(StoreError::Invalid)?;
        if fields == current.fields() {
            return Ok(current);
        }
        let group = Group {
            name: fields.name,
            description: fields.description,
            modified_at: now()?,
            etag: new_etag(),
            ..current
        };
        tx.execute(
            "UPDATE directory_groups SET name_key = ?2, doc = ?3 WHERE id = ?1",
            params![group.id, key(&group.name), to_doc(&group)?],
        )?;
        tx.commit()?;
        Ok(group)
    }

    /// Hard delete. Every user in the group loses it from `groupIds` (a change to
    /// that user: new etag and `modifiedAt`).
    pub(crate) fn delete_group(&self, id: &str) -> Result<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        existing_group(&tx, id)?;
        let members: Vec<String> = {
            let mut statement = tx.prepare(
                "SELECT doc FROM directory_users WHERE EXISTS \
                 (SELECT 1 FROM json_each(doc, '$.groupIds') WHERE json_each.value = ?1)",
            )?;
            statement
                .query_map(params![id], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        for doc in members {
            let mut user: User = parse_doc(&doc)?;
            user.group_ids.retain(|group| group != id);
            write_user(&tx, user)?;
        }
        tx.execute("DELETE FROM directory_groups WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(())
    }
}

fn existing_user(conn: &Connection, id: &str) -> Result<User> {
    let doc: Option<String> = conn
        .query_row(
            "SELECT doc FROM directory_users WHERE id = ?1",
            params![id],
            |row| row.get(0),
        )
        .optional()?;
    match doc {
        Some(doc) => parse_doc(&doc),
        None => Err(user_not_found(id)),
    }
}

fn existing_group(conn: &Connection, id: &str) -> Result<Group> {
    let doc: Option<String> = conn
        .query_row(
            "SELECT doc FROM directory_groups WHERE id = ?1",
            params![id],
            |row| row.get(0),
        )
        .optional()?;
    match doc {
        Some(doc) => parse_doc(&doc),
        None => Err(group_not_found(id)),
    }
}

fn exists(tx: &Transaction<'_>, table: &'static str, id: &str) -> Result<bool> {
    let found: Option<i64> = tx
        .query_row(
            &format!("SELECT 1 FROM {table} WHERE id = ?1"),
            params![id],
            |row| row.get(0),
        )
        .optional()?;
    Ok(found.is_some())
}

/// The manager and groups `fields` name, where they differ from `current`'s, must
/// exist; a user cannot manage themselves.
fn check_references(tx: &Transaction<'_>, current: &User, fields: &UserFields) -> Result<()> {
    let mut errors = Vec::new();
    if let Some(manager) = &fields.manager
        && fields.manager != current.manager
    {
        if manager.id == current.id {
            errors.push(FieldError::new(
                "manager.id",
                "a user cannot manage themselves",
            ));
        } else if !exists(tx, "directory_users", &manager.id)? {
            errors.push(FieldError::new(
                "manager.id",
                format!("no user with id `{}`", manager.id),
            ));
        }
    }
    for (index, group) in fields.group_ids.iter().enumerate() {
        if !current.group_ids.contains(group) && !exists(tx, "directory_groups", group)? {
            errors.push(FieldError::new(
                format!("groupIds[{index}]"),
                format!("no group with id `{group}`"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(errors))
    }
}

/// Stamps `user` with a new etag and `modifiedAt` and stores it over its old row.
fn write_user(tx: &Transaction<'_>, mut user: User) -> Result<User> {
    user.modified_at = now()?;
    user.etag = new_etag();
    tx.execute(
        "UPDATE directory_users SET username_key = ?2, email_key = ?3, external_key = ?4, \
         deleted = ?5, doc = ?6 WHERE id = ?1",
        params![
            user.id,
            key(&user.username),
            user.contact.email.as_deref().map(key),
            user.external_key,
            user.deleted,
            to_doc(&user)?,
        ],
    )
    .map_err(|err| uniqueness(err, &user))?;
    Ok(user)
}
