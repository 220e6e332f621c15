//! SQLite storage of the legacy API: users, teams and team memberships.
//!
//! One connection behind one `std::sync::Mutex`, locked only for the statements of a
//! single operation (callers run operations on tokio's blocking pool, never across an
//! `.await`). The database, not this code, is the authority on uniqueness: `COLLATE
//! NOCASE` unique indexes raise constraint errors that are mapped to the 409 codes.
//! Every write that changes a row bumps its `version` and `updated_at`; a write that
//! would change nothing leaves both alone.

use std::sync::{Mutex, MutexGuard};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params, params_from_iter};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::extract::Page;
use super::records::{
    Added, Member, PasswordChange, Role, Status, Team, TeamPatch, UpdateMode, User, UserFields,
    UserFilter, UserPatch,
};
use super::{Database, LegacyError};

/// Bumped when [`SCHEMA`] changes shape; a database from a newer build is refused.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    login        TEXT    NOT NULL,
    first_name   TEXT,
    last_name    TEXT,
    email        TEXT,
    job_title    TEXT,
    phone        TEXT,
    org          TEXT,
    dept         TEXT,
    employee_no  TEXT,
    manager_id   INTEGER REFERENCES users(id) ON DELETE SET NULL,
    external_ref TEXT,
    role         TEXT    NOT NULL DEFAULT 'member'
                 CHECK (role IN ('member', 'external', 'collaborator', 'contributor', 'viewer')),
    status       TEXT    NOT NULL DEFAULT 'enabled'
                 CHECK (status IN ('enabled', 'disabled', 'archived')),
    has_password INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    version      INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS users_login_nocase ON users (login COLLATE NOCASE);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_nocase ON users (email COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS users_external_ref ON users (external_ref);
CREATE INDEX IF NOT EXISTS users_manager ON users (manager_id);

CREATE TABLE IF NOT EXISTS teams (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    description TEXT,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS teams_name_nocase ON teams (name COLLATE NOCASE);

CREATE TABLE IF NOT EXISTS team_members (
    team_id  INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    added_at TEXT    NOT NULL,
    PRIMARY KEY (team_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS team_members_user ON team_members (user_id);
";

/// A store failure, converted to the wire error in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A field names a row that does not exist (a manager, a member).
    #[error("{0}")]
    InvalidReference(String),
    #[error("store mutex poisoned")]
    Poisoned,
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot format the current time: {0}")]
    Clock(#[from] time::error::Format),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The SQLite store. Cheap to share behind an `Arc`.
pub(crate) struct Store {
    conn: Mutex<Connection>,
}

const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// Now, as RFC 3339 UTC with whole seconds: `2026-11-23T17:40:00Z`.
fn now() -> Result<String> {
    Ok(OffsetDateTime::now_utc().format(TIMESTAMP)?)
}

const USER_COLUMNS: &str = "id, login, first_name, last_name, email, job_title, phone, org, \
     dept, employee_no, manager_id, external_ref, role, status, has_password, created_at, \
     updated_at, version";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = row.get(12)?;
    let status: String = row.get(13)?;
    let bad_enum = |index: usize, name: &str| {
        rusqlite::Error::InvalidColumnType(index, name.to_string(), rusqlite::types::Type::Text)
    };
    Ok(User {
        id: row.get(0)?,
        fields: UserFields {
            login: row.get(1)?,
            first_name: row.get(2)?,
            last_name: row.get(3)?,
            email: row.get(4)?,
            job_title: row.get(5)?,
            phone: row.get(6)?,
            org: row.get(7)?,
            dept: row.get(8)?,
            employee_no: row.get(9)?,
            manager_id: row.get(10)?,
            external_ref: row.get(11)?,
            role: Role::parse(&role).ok_or_else(|| bad_enum(12, "role"))?,
            status: Status::parse(&status).ok_or_else(|| bad_enum(13, "status"))?,
            has_password: row.get(14)?,
        },
        created_at: row.get(15)?,
        updated_at: row.get(16)?,
        version: row.get(17)?,
    })
}

const TEAM_COLUMNS: &str = "id, name, description, created_at, updated_at, version";

fn team_from_row(row: &Row<'_>) -> rusqlite::Result<Team> {
    Ok(Team {
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
        version: row.get(5)?,
    })
}

/// Maps a unique-index violation to its 409 code; anything else stays a database error.
fn uniqueness(err: rusqlite::Error, fields: &UniqueValues<'_>) -> StoreError {
    let rusqlite::Error::SqliteFailure(failure, Some(message)) = &err else {
        return err.into();
    };
    if failure.extended_code != rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE {
        return err.into();
    }
    let (code, what, value) = if message.contains("users.login") {
        ("LOGIN_TAKEN", "login", fields.login)
    } else if message.contains("users.email") {
        ("EMAIL_TAKEN", "email", fields.email)
    } else if message.contains("teams.name") {
        ("NAME_TAKEN", "team name", fields.name)
    } else {
        return err.into();
    };
    StoreError::Conflict {
        code,
        message: format!(
            "{what} `{}` is already taken (compared case-insensitively)",
            value.unwrap_or_default()
        ),
    }
}

/// The values a write tried to store, to name them in a conflict message.
#[derive(Default)]
struct UniqueValues<'a> {
    login: Option<&'a str>,
    email: Option<&'a str>,
    name: Option<&'a str>,
}

impl<'a> UniqueValues<'a> {
    fn user(fields: &'a UserFields) -> Self {
        UniqueValues {
            login: Some(&fields.login),
            email: fields.email.as_deref(),
            name: None,
        }
    }

    fn team(name: &'a str) -> Self {
        UniqueValues {
            name: Some(name),
            ..UniqueValues::default()
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub(crate) fn open(database: &Database) -> Result<Store, LegacyError> {
        let opened = match database {
            Database::Memory => Connection::open_in_memory(),
            Database::File(path) => Connection::open(path),
        };
        let conn = opened.map_err(|source| LegacyError::Open {
            database: database.clone(),
            source,
        })?;
        Self::migrate(&conn, database)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn migrate(conn: &Connection, database: &Database) -> Result<(), LegacyError> {
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(LegacyError::Migrate)?;
        if let Database::File(_) = database {
            // WAL with NORMAL sync: durable across process crashes, and benchmarks
            // are not dominated by one fsync per write.
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
                .map_err(LegacyError::Migrate)?;
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(LegacyError::Migrate)?;
        }
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(LegacyError::Migrate)?;
        if found > SCHEMA_VERSION {
            return Err(LegacyError::SchemaVersion {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(LegacyError::Migrate)
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

    // ───────────────────────────── users ─────────────────────────────

    pub(crate) fn list_users(&self, filter: &UserFilter, page: Page) -> Result<(Vec<User>, u64)> {
        let mut clauses: Vec<String> = Vec::new();
        let mut values: Vec<SqlValue> = Vec::new();
        if let Some(login) = &filter.login {
            clauses.push("login = ? COLLATE NOCASE".into());
            values.push(SqlValue::Text(login.clone()));
        }
        if let Some(email) = &filter.email {
            clauses.push("email = ? COLLATE NOCASE".into());
            values.push(SqlValue::Text(email.clone()));
        }
        if let Some(external_ref) = &filter.external_ref {
            clauses.push("external_ref = ?".into());
            values.push(SqlValue::Text(external_ref.clone()));
        }
        if !filter.statuses.is_empty() {
            let marks = vec!["?"; filter.statuses.len()].join(", ");
            clauses.push(format!("status IN ({marks})"));
            values.extend(
                filter
                    .statuses
                    .iter()
                    .map(|s| SqlValue::Text(s.as_str().into())),
            );
        }
        let condition = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let (limit, offset) = page.limit_offset();
        let conn = self.lock()?;
        let total: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM users {condition}"),
            params_from_iter(values.iter()),
            |row| row.get(0),
        )?;
        values.push(SqlValue::Integer(limit));
        values.push(SqlValue::Integer(offset));
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users {condition} ORDER BY id LIMIT ? OFFSET ?"
        ))?;
        let users = statement
            .query_map(params_from_iter(values.iter()), user_from_row)?
            .collect::<rusqlite::Result<Vec<User>>>()?;
        Ok((users, u64::try_from(total).unwrap_or(0)))
    }

    pub(crate) fn get_user(&self, id: i64) -> Result<User> {
        let conn = self.lock()?;
        find_user(&conn, id)?.ok_or_else(|| user_not_found(id))
    }

    pub(crate) fn create_user(&self, fields: UserFields) -> Result<User> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        if let Some(manager) = fields.manager_id {
            require_manager(&tx, manager)?;
        }
        let at = now()?;
        tx.execute(
            "INSERT INTO users (login, first_name, last_name, email, job_title, phone, org, dept, \
             employee_no, manager_id, external_ref, role, status, has_password, created_at, \
             updated_at, version) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, 1)",
            params![
                fields.login,
                fields.first_name,
                fields.last_name,
                fields.email,
                fields.job_title,
                fields.phone,
                fields.org,
                fields.dept,
                fields.employee_no,
                fields.manager_id,
                fields.external_ref,
                fields.role.as_str(),
                fields.status.as_str(),
                fields.has_password,
                at,
            ],
        )
        .map_err(|err| uniqueness(err, &UniqueValues::user(&fields)))?;
        let id = tx.last_insert_rowid();
        let user = find_user(&tx, id)?.ok_or_else(|| user_not_found(id))?;
        tx.commit()?;
        Ok(user)
    }

    pub(crate) fn update_user(&self, id: i64, patch: UserPatch, mode: UpdateMode) -> Result<User> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let current = find_user(&tx, id)?.ok_or_else(|| user_not_found(id))?;
        let password_set = patch.password == Some(PasswordChange::Set);
        let fields = patch.apply(&current.fields, mode);
        if fields == current.fields && !password_set {
            return Ok(current);
        }
        if let Some(manager) = fields.manager_id
            && fields.manager_id != current.fields.manager_id
        {
            if manager == id {
                return Err(StoreError::InvalidReference(
                    "field `manager_id` cannot be the user's own id".into(),
                ));
            }
            require_manager(&tx, manager)?;
        }
        tx.execute(
            "UPDATE users SET login = ?2, first_name = ?3, last_name = ?4, email = ?5, \
             job_title = ?6, phone = ?7, org = ?8, dept = ?9, employee_no = ?10, \
             manager_id = ?11, external_ref = ?12, role = ?13, status = ?14, \
             has_password = ?15, updated_at = ?16, version = version + 1 WHERE id = ?1",
            params![
                id,
                fields.login,
                fields.first_name,
                fields.last_name,
                fields.email,
                fields.job_title,
                fields.phone,
                fields.org,
                fields.dept,
                fields.employee_no,
                fields.manager_id,
                fields.external_ref,
                fields.role.as_str(),
                fields.status.as_str(),
                fields.has_password,
                now()?,
            ],
        )
        .map_err(|err| uniqueness(err, &UniqueValues::user(&fields)))?;
        let user = find_user(&tx, id)?.ok_or_else(|| user_not_found(id))?;
        tx.commit()?;
        Ok(user)
    }

    /// Hard delete. The user's teams lose a member and its reports lose their manager,
    /// so those rows change too and get their version bumped here rather than being
    /// rewritten silently by the foreign keys' cascades.
    pub(crate) fn delete_user(&self, id: i64) -> Result<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        if find_user(&tx, id)?.is_none() {
            return Err(user_not_found(id));
        }
        let at = now()?;
        tx.execute(
            "UPDATE teams SET version = version + 1, updated_at = ?2 \
             WHERE id IN (SELECT team_id FROM team_members WHERE user_id = ?1)",
            params![id, at],
        )?;
        tx.execute(
            "UPDATE users SET manager_id = NULL, version = version + 1, updated_at = ?2 \
             WHERE manager_id = ?1 AND id <> ?1",
            params![id, at],
        )?;
        tx.execute("DELETE FROM users WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(())
    }

    // ───────────────────────────── teams ─────────────────────────────

    pub(crate) fn list_teams(&self, name: Option<&str>, page: Page) -> Result<(Vec<Team>, u64)> {
        let (limit, offset) = page.limit_offset();
        let conn = self.lock()?;
        // `?1 IS NULL OR …` keeps one cached statement for both the filtered and the
        // unfiltered list.
        let condition = "WHERE ?1 IS NULL OR name = ?1 COLLATE NOCASE";
        let total: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM teams {condition}"),
            params![name],
            |row| row.get(0),
        )?;
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {TEAM_COLUMNS} FROM teams {condition} ORDER BY id LIMIT ?2 OFFSET ?3"
        ))?;
        let teams = statement
            .query_map(params![name, limit, offset], team_from_row)?
            .collect::<rusqlite::Result<Vec<Team>>>()?;
        Ok((teams, u64::try_from(total).unwrap_or(0)))
    }

    pub(crate) fn get_team(&self, id: i64) -> Result<Team> {
        let conn = self.lock()?;
        find_team(&conn, id)?.ok_or_else(|| team_not_found(id))
    }

    pub(crate) fn create_team(&self, name: String, description: Option<String>) -> Result<Team> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO teams (name, description, created_at, updated_at, version) \
             VALUES (?1, ?2, ?3, ?3, 1)",
            params![name, description, now()?],
        )
        .map_err(|err| uniqueness(err, &UniqueValues::team(&name)))?;
        let id = tx.last_insert_rowid();
        let team = find_team(&tx, id)?.ok_or_else(|| team_not_found(id))?;
        tx.commit()?;
        Ok(team)
    }

    pub(crate) fn update_team(&self, id: i64, patch: TeamPatch) -> Result<Team> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let current = find_team(&tx, id)?.ok_or_else(|| team_not_found(id))?;
        let name = patch.name.unwrap_or_else(|| current.name.clone());
        let description = patch
            .description
            .unwrap_or_else(|| current.description.clone());
        if name == current.name && description == current.description {
            return Ok(current);
        }
        tx.execute(
            "UPDATE teams SET name = ?2, description = ?3, updated_at = ?4, \
             version = version + 1 WHERE id = ?1",
            params![id, name, description, now()?],
        )
        .map_err(|err| uniqueness(err, &UniqueValues::team(&name)))?;
        let team = find_team(&tx, id)?.ok_or_else(|| team_not_found(id))?;
        tx.commit()?;
        Ok(team)
    }

    pub(crate) fn delete_team(&self, id: i64) -> Result<()> {
        let conn = self.lock()?;
        match conn.execute("DELETE FROM teams WHERE id = ?1", params![id])? {
            0 => Err(team_not_found(id)),
            _ => Ok(()),
        }
    }

    // ─────────────────────────── memberships ───────────────────────────

    pub(crate) fn list_members(&self, team_id: i64, page: Page) -> Result<(Vec<Member>, u64)> {
        let (limit, offset) = page.limit_offset();
        let conn = self.lock()?;
        if find_team(&conn, team_id)?.is_none() {
            return Err(team_not_found(team_id));
        }
        let total: i64 = conn.query_row(
            "SELECT COUNT(*) FROM team_members WHERE team_id = ?1",
            params![team_id],
            |row| row.get(0),
        )?;
        let mut statement = conn.prepare_cached(
            "SELECT m.user_id, u.login, m.added_at FROM team_members m \
             JOIN users u ON u.id = m.user_id WHERE m.team_id = ?1 \
             ORDER BY m.user_id LIMIT ?2 OFFSET ?3",
        )?;
        let members = statement
            .query_map(params![team_id, limit, offset], member_from_row)?
            .collect::<rusqlite::Result<Vec<Member>>>()?;
        Ok((members, u64::try_from(total).unwrap_or(0)))
    }

    /// Adds `user_id` to the team; adding an existing member changes nothing.
    pub(crate) fn add_member(&self, team_id: i64, user_id: i64) -> Result<(Member, Added)> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        if find_team(&tx, team_id)?.is_none() {
            return Err(team_not_found(team_id));
        }
        if let Some(member) = find_member(&tx, team_id, user_id)? {
            return Ok((member, Added::Existing));
        }
        if find_user(&tx, user_id)?.is_none() {
            return Err(StoreError::InvalidReference(format!(
                "field `user_id`: no user with id {user_id}"
            )));
        }
        let at = now()?;
        tx.execute(
            "INSERT INTO team_members (team_id, user_id, added_at) VALUES (?1, ?2, ?3)",
            params![team_id, user_id, at],
        )?;
        touch_team(&tx, team_id, &at)?;
        let member = find_member(&tx, team_id, user_id)?.ok_or_else(|| {
            StoreError::NotFound(format!("user {user_id} is not a member of team {team_id}"))
        })?;
        tx.commit()?;
        Ok((member, Added::New))
    }

    pub(crate) fn remove_member(&self, team_id: i64, user_id: i64) -> Result<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        if find_team(&tx, team_id)?.is_none() {
            return Err(team_not_found(team_id));
        }
        let removed = tx.execute(
            "DELETE FROM team_members WHERE team_id = ?1 AND user_id = ?2",
            params![team_id, user_id],
        )?;
        if removed == 0 {
            return Err(StoreError::NotFound(format!(
                "user {user_id} is not a member of team {team_id}"
            )));
        }
        touch_team(&tx, team_id, &now()?)?;
        tx.commit()?;
        Ok(())
    }
}

fn user_not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("user {id} not found"))
}

fn team_not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("team {id} not found"))
}

fn find_user(conn: &Connection, id: i64) -> Result<Option<User>> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?;
    Ok(statement.query_row(params![id], user_from_row).optional()?)
}

fn require_manager(tx: &Transaction<'_>, manager: i64) -> Result<()> {
    match find_user(tx, manager)? {
        Some(_) => Ok(()),
        None => Err(StoreError::InvalidReference(format!(
            "field `manager_id`: no user with id {manager}"
        ))),
    }
}

fn find_team(conn: &Connection, id: i64) -> Result<Option<Team>> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {TEAM_COLUMNS} FROM teams WHERE id = ?1"))?;
    Ok(statement.query_row(params![id], team_from_row).optional()?)
}

fn member_from_row(row: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        user_id: row.get(0)?,
        login: row.get(1)?,
        added_at: row.get(2)?,
    })
}

fn find_member(conn: &Connection, team_id: i64, user_id: i64) -> Result<Option<Member>> {
    let mut statement = conn.prepare_cached(
        "SELECT m.user_id, u.login, m.added_at FROM team_members m \
         JOIN users u ON u.id = m.user_id WHERE m.team_id = ?1 AND m.user_id = ?2",
    )?;
    Ok(statement
        .query_row(params![team_id, user_id], member_from_row)
        .optional()?)
}

/// A membership change is a change of the team.
fn touch_team(conn: &Connection, team_id: i64, at: &str) -> Result<()> {
    conn.execute(
        "UPDATE teams SET version = version + 1, updated_at = ?2 WHERE id = ?1",
        params![team_id, at],
    )?;
    Ok(())
}
