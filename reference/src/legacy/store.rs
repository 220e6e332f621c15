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
use rusqlite::{
    Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params, params_from_iter,
};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::extract::Page;
use super::records::{
    Added, Member, PasswordChange, Role, Status, Team, TeamFields, TeamFilter, TeamPatch,
    UpdateMode, User, UserFields, UserFilter, UserPatch,
};
use super::{Database, LegacyError};

/// Bumped when the schema changes shape; a database from a newer build is refused, an
/// older one is brought up to date by [`Store::migrate`].
///
/// 1. users, teams, team_members.
/// 2. `teams.external_ref` (and its index).
const SCHEMA_VERSION: i64 = 3;

/// The tables in their current shape. `IF NOT EXISTS` makes this a no-op for tables an
/// older database already has; those are altered by the steps in [`Store::migrate`].
/// Indexes on columns added by a later version belong in [`LATE_INDEXES`], which runs
/// after those steps.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    login        TEXT    NOT NULL,
    first_name   TEXT,
    last_name    TEXT,
    display_name TEXT,
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
    name         TEXT    NOT NULL,
    description  TEXT,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    version      INTEGER NOT NULL DEFAULT 1,
    external_ref TEXT
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

/// Indexes on columns that an older database gains only in a migration step.
const LATE_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS teams_external_ref ON teams (external_ref);
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
    /// A conditional write found the row at another version.
    #[error("the record is at version {current}, not {expected}; read it again")]
    Stale { expected: i64, current: i64 },
    #[error("store mutex poisoned")]
    Poisoned,
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot format the current time: {0}")]
    Clock(#[from] time::error::Format),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A conditional write's version against the row's.
fn check_version(expected: Option<i64>, current: i64) -> Result<()> {
    match expected {
        Some(expected) if expected != current => Err(StoreError::Stale { expected, current }),
        _ => Ok(()),
    }
}

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
     updated_at, version, display_name";

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
            display_name: row.get(18)?,
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

const TEAM_COLUMNS: &str = "id, name, description, external_ref, created_at, updated_at, version";

fn team_from_row(row: &Row<'_>) -> rusqlite::Result<Team> {
    Ok(Team {
        id: row.get(0)?,
        fields: TeamFields {
            name: row.get(1)?,
            description: row.get(2)?,
            external_ref: row.get(3)?,
        },
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
        version: row.get(6)?,
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

/// The `WHERE` clauses of a list query and the values of their `?` placeholders.
#[derive(Default)]
struct Filters {
    clauses: Vec<String>,
    values: Vec<SqlValue>,
}

impl Filters {
    /// `clause` (one `?`) bound to `value`, when the filter is present.
    fn text(&mut self, clause: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.clauses.push(clause.into());
            self.values.push(SqlValue::Text(value.into()));
        }
    }

    /// `column IN (…)`, when `allowed` is not empty (empty means any).
    fn any_of<'a>(&mut self, column: &str, allowed: impl ExactSizeIterator<Item = &'a str>) {
        if allowed.len() == 0 {
            return;
        }
        let marks = vec!["?"; allowed.len()].join(", ");
        self.clauses.push(format!("{column} IN ({marks})"));
        self.values
            .extend(allowed.map(|item| SqlValue::Text(item.into())));
    }
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub(crate) fn open(database: &Database) -> Result<Store, LegacyError> {
        let opened = match database {
            Database::Memory => Connection::open_in_memory(),
            Database::File(path) => Connection::open(path),
        };
        let mut conn = opened.map_err(|source| LegacyError::Open {
            database: database.clone(),
            source,
        })?;
        Self::migrate(&mut conn, database)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// Creates the schema in a new database, upgrades an older one step by step, and
    /// refuses one written by a newer build. All of it in one immediate transaction, so
    /// two processes opening the same file cannot both migrate it, and a failed step
    /// leaves the file as it was.
    fn migrate(conn: &mut Connection, database: &Database) -> Result<(), LegacyError> {
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
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(LegacyError::Migrate)?;
        let found: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(LegacyError::Migrate)?;
        if found > SCHEMA_VERSION {
            return Err(LegacyError::SchemaVersion {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Self::upgrade(&tx, found).map_err(LegacyError::Migrate)?;
        tx.commit().map_err(LegacyError::Migrate)
    }

    /// Brings a database at schema version `found` (0: new) to [`SCHEMA_VERSION`].
    fn upgrade(tx: &Transaction<'_>, found: i64) -> rusqlite::Result<()> {
        tx.execute_batch(SCHEMA)?;
        // 1 → 2: teams gain `external_ref`. A new database got it from `SCHEMA`
        // already, hence the column check rather than trusting the version alone.
        if found < 2 && !has_column(tx, "teams", "external_ref")? {
            tx.execute_batch("ALTER TABLE teams ADD COLUMN external_ref TEXT")?;
        }
        // 2 → 3: users gain `display_name` (what IdPs send as displayName).
        if found < 3 && !has_column(tx, "users", "display_name")? {
            tx.execute_batch("ALTER TABLE users ADD COLUMN display_name TEXT")?;
        }
        tx.execute_batch(LATE_INDEXES)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
    }

    /// Drops the unique indexes on logins and emails (keeping a plain one
    /// for look-ups): the store then takes duplicates, as many legacy APIs
    /// do. For a database of this process only: opening the file again
    /// without it restores the indexes, or fails if duplicates were made.
    pub(crate) fn allow_duplicates(&self) -> rusqlite::Result<()> {
        // Called right after `open`: nothing can have poisoned the lock.
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        conn.execute_batch(
            "DROP INDEX IF EXISTS users_login_nocase;
             DROP INDEX IF EXISTS users_email_nocase;
             CREATE INDEX IF NOT EXISTS users_login_lookup ON users (login COLLATE NOCASE);",
        )
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

    /// One page of `table`'s rows matching every filter, ordered by id, and the count
    /// of all matching rows. `table` and `columns` go into the SQL text, hence
    /// `'static`: constants of this file, never request data.
    fn paged_select<T>(
        &self,
        table: &'static str,
        columns: &'static str,
        filters: Filters,
        page: Page,
        from_row: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<(Vec<T>, u64)> {
        let Filters {
            clauses,
            mut values,
        } = filters;
        let condition = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let (limit, offset) = page.limit_offset();
        let conn = self.lock()?;
        let total: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM {table} {condition}"),
            params_from_iter(values.iter()),
            |row| row.get(0),
        )?;
        values.push(SqlValue::Integer(limit));
        values.push(SqlValue::Integer(offset));
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {columns} FROM {table} {condition} ORDER BY id LIMIT ? OFFSET ?"
        ))?;
        let rows = statement
            .query_map(params_from_iter(values.iter()), from_row)?
            .collect::<rusqlite::Result<Vec<T>>>()?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }

    // ───────────────────────────── users ─────────────────────────────

    pub(crate) fn list_users(&self, filter: &UserFilter, page: Page) -> Result<(Vec<User>, u64)> {
        let mut filters = Filters::default();
        filters.text("login = ? COLLATE NOCASE", filter.login.as_deref());
        filters.text("email = ? COLLATE NOCASE", filter.email.as_deref());
        filters.text("external_ref = ?", filter.external_ref.as_deref());
        filters.any_of("status", filter.statuses.iter().map(|s| s.as_str()));
        self.paged_select("users", USER_COLUMNS, filters, page, user_from_row)
    }

    pub(crate) fn get_user(&self, id: i64) -> Result<User> {
        let conn = self.lock()?;
        existing_user(&conn, id)
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
             updated_at, version, display_name) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, 1, ?16)",
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
                fields.display_name,
            ],
        )
        .map_err(|err| uniqueness(err, &UniqueValues::user(&fields)))?;
        let id = tx.last_insert_rowid();
        let user = existing_user(&tx, id)?;
        tx.commit()?;
        Ok(user)
    }

    /// With `expected`, only a user at that version is written (checked in
    /// the write's transaction).
    pub(crate) fn update_user(
        &self,
        id: i64,
        patch: UserPatch,
        mode: UpdateMode,
        expected: Option<i64>,
    ) -> Result<User> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let current = existing_user(&tx, id)?;
        check_version(expected, current.version)?;
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
             has_password = ?15, updated_at = ?16, display_name = ?17, version = version + 1 \
             WHERE id = ?1",
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
                fields.display_name,
            ],
        )
        .map_err(|err| uniqueness(err, &UniqueValues::user(&fields)))?;
        let user = existing_user(&tx, id)?;
        tx.commit()?;
        Ok(user)
    }

    /// Hard delete. The user's teams lose a member and its reports lose their manager,
    /// so those rows change too and get their version bumped here rather than being
    /// rewritten silently by the foreign keys' cascades.
    pub(crate) fn delete_user(&self, id: i64) -> Result<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        existing_user(&tx, id)?;
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

    pub(crate) fn list_teams(&self, filter: &TeamFilter, page: Page) -> Result<(Vec<Team>, u64)> {
        let mut filters = Filters::default();
        filters.text("name = ? COLLATE NOCASE", filter.name.as_deref());
        filters.text("external_ref = ?", filter.external_ref.as_deref());
        self.paged_select("teams", TEAM_COLUMNS, filters, page, team_from_row)
    }

    pub(crate) fn get_team(&self, id: i64) -> Result<Team> {
        let conn = self.lock()?;
        existing_team(&conn, id)
    }

    pub(crate) fn create_team(&self, fields: TeamFields) -> Result<Team> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO teams (name, description, external_ref, created_at, updated_at, \
             version) VALUES (?1, ?2, ?3, ?4, ?4, 1)",
            params![fields.name, fields.description, fields.external_ref, now()?],
        )
        .map_err(|err| uniqueness(err, &UniqueValues::team(&fields.name)))?;
        let id = tx.last_insert_rowid();
        let team = existing_team(&tx, id)?;
        tx.commit()?;
        Ok(team)
    }

    /// With `expected`, only a team at that version is written.
    pub(crate) fn update_team(
        &self,
        id: i64,
        patch: TeamPatch,
        expected: Option<i64>,
    ) -> Result<Team> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let current = existing_team(&tx, id)?;
        check_version(expected, current.version)?;
        let fields = patch.apply(&current.fields);
        if fields == current.fields {
            return Ok(current);
        }
        tx.execute(
            "UPDATE teams SET name = ?2, description = ?3, external_ref = ?4, \
             updated_at = ?5, version = version + 1 WHERE id = ?1",
            params![
                id,
                fields.name,
                fields.description,
                fields.external_ref,
                now()?
            ],
        )
        .map_err(|err| uniqueness(err, &UniqueValues::team(&fields.name)))?;
        let team = existing_team(&tx, id)?;
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
        existing_team(&conn, team_id)?;
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
    /// A team named `name` with `members` new users
    /// (`{name}-{n}@example.com`), in one transaction: how tests and
    /// benchmarks build a group of 100,000 members without 200,000
    /// requests. Answers the team's id.
    pub(crate) fn seed_team(&self, name: &str, members: usize) -> Result<i64> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let at = now()?;
        tx.execute(
            "INSERT INTO teams (name, created_at, updated_at, version) VALUES (?1, ?2, ?2, 1)",
            params![name, at],
        )?;
        let team_id = tx.last_insert_rowid();
        {
            let mut user = tx.prepare(
                "INSERT INTO users (login, email, created_at, updated_at) VALUES (?1, ?1, ?2, ?2)",
            )?;
            let mut member = tx.prepare(
                "INSERT INTO team_members (team_id, user_id, added_at) VALUES (?1, ?2, ?3)",
            )?;
            for n in 0..members {
                user.execute(params![format!("{name}-{n}@example.com"), at])?;
                member.execute(params![team_id, tx.last_insert_rowid(), at])?;
            }
        }
        tx.commit()?;
        Ok(team_id)
    }

    pub(crate) fn member(&self, team_id: i64, user_id: i64) -> Result<Member> {
        let conn = self.lock()?;
        existing_team(&conn, team_id)?;
        find_member(&conn, team_id, user_id)?.ok_or_else(|| {
            StoreError::NotFound(format!("user {user_id} is not a member of team {team_id}"))
        })
    }

    pub(crate) fn add_member(&self, team_id: i64, user_id: i64) -> Result<(Member, Added)> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        existing_team(&tx, team_id)?;
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
        existing_team(&tx, team_id)?;
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

/// The row of `table` with this id, if any (`table` and `columns` as in
/// [`Store::paged_select`]).
fn find_by_id<T>(
    conn: &Connection,
    table: &'static str,
    columns: &'static str,
    id: i64,
    from_row: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {columns} FROM {table} WHERE id = ?1"))?;
    Ok(statement.query_row(params![id], from_row).optional()?)
}

fn find_user(conn: &Connection, id: i64) -> Result<Option<User>> {
    find_by_id(conn, "users", USER_COLUMNS, id, user_from_row)
}

/// The user with this id, or "not found".
fn existing_user(conn: &Connection, id: i64) -> Result<User> {
    find_user(conn, id)?.ok_or_else(|| user_not_found(id))
}

fn require_manager(tx: &Transaction<'_>, manager: i64) -> Result<()> {
    match find_user(tx, manager)? {
        Some(_) => Ok(()),
        None => Err(StoreError::InvalidReference(format!(
            "field `manager_id`: no user with id {manager}"
        ))),
    }
}

/// Whether `table` has a column named `column`.
fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut statement = conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?;
    statement.exists(params![table, column])
}

fn find_team(conn: &Connection, id: i64) -> Result<Option<Team>> {
    find_by_id(conn, "teams", TEAM_COLUMNS, id, team_from_row)
}

/// The team with this id, or "not found".
fn existing_team(conn: &Connection, id: i64) -> Result<Team> {
    find_team(conn, id)?.ok_or_else(|| team_not_found(id))
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

#[cfg(test)]
mod tests {
    use super::super::LegacyError;
    use super::super::test_support::{Client, TempDb, open, temp_db};
    use super::SCHEMA_VERSION;
    use http::StatusCode;
    use rusqlite::Connection;
    use serde_json::{Value, json};

    /// The schema as version 1 of this build wrote it: teams without `external_ref`.
    const SCHEMA_V1: &str = "
CREATE TABLE users (
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
CREATE UNIQUE INDEX users_login_nocase ON users (login COLLATE NOCASE);
CREATE UNIQUE INDEX users_email_nocase ON users (email COLLATE NOCASE);
CREATE INDEX users_external_ref ON users (external_ref);
CREATE INDEX users_manager ON users (manager_id);
CREATE TABLE teams (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    description TEXT,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX teams_name_nocase ON teams (name COLLATE NOCASE);
CREATE TABLE team_members (
    team_id  INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    added_at TEXT    NOT NULL,
    PRIMARY KEY (team_id, user_id)
) WITHOUT ROWID;
CREATE INDEX team_members_user ON team_members (user_id);
INSERT INTO users (login, created_at, updated_at) VALUES ('old', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z');
INSERT INTO teams (name, description, created_at, updated_at, version)
    VALUES ('Old team', 'from v1', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z', 3);
INSERT INTO team_members (team_id, user_id, added_at) VALUES (1, 1, '2025-01-01T00:00:00Z');
PRAGMA user_version = 1;
";

    fn user_version(db: &TempDb) -> i64 {
        Connection::open(&db.path)
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    }

    fn has_index(db: &TempDb, name: &str) -> bool {
        Connection::open(&db.path)
            .unwrap()
            .prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1")
            .unwrap()
            .exists([name])
            .unwrap()
    }

    #[tokio::test]
    async fn a_version_1_file_gains_team_external_ref_on_open() {
        let db = temp_db("migrate-v1");
        Connection::open(&db.path)
            .unwrap()
            .execute_batch(SCHEMA_V1)
            .unwrap();

        let client = Client::new(open(&db).expect("a v1 database opens"));
        assert_eq!(user_version(&db), SCHEMA_VERSION);
        assert!(has_index(&db, "teams_external_ref"));

        // The old row is intact, with the new column null and its version untouched.
        let old = client.get("/api/v1/teams/1").await;
        assert_eq!(old.status, StatusCode::OK);
        assert_eq!(old.json["name"], "Old team");
        assert_eq!(old.json["description"], "from v1");
        assert_eq!(old.json["external_ref"], Value::Null);
        assert_eq!(old.json["version"], 3);
        let members = client.get("/api/v1/teams/1/members").await;
        assert_eq!(members.column("login"), [json!("old")]);

        // And the column works: patch, create, search.
        let patched = client
            .patch("/api/v1/teams/1", json!({"external_ref": "g-old"}))
            .await;
        assert_eq!(patched.json["external_ref"], "g-old");
        assert_eq!(patched.json["version"], 4);
        let new = client
            .post(
                "/api/v1/teams",
                json!({"name": "New team", "external_ref": "g-new"}),
            )
            .await;
        assert_eq!(new.status, StatusCode::CREATED);
        assert_eq!(new.json["id"], 2);
        let found = client.get("/api/v1/teams?external_ref=g-old").await;
        assert_eq!(found.column("id"), [json!(1)]);
        drop(client);

        // Reopening the migrated file is a no-op that keeps the data.
        let again = Client::new(open(&db).expect("a migrated database reopens"));
        assert_eq!(user_version(&db), SCHEMA_VERSION);
        let found = again.get("/api/v1/teams?external_ref=g-new").await;
        assert_eq!(found.column("name"), [json!("New team")]);
    }

    #[tokio::test]
    async fn a_new_file_is_created_at_the_current_version() {
        let db = temp_db("fresh");
        let client = Client::new(open(&db).unwrap());
        assert_eq!(user_version(&db), SCHEMA_VERSION);
        assert!(has_index(&db, "teams_external_ref"));
        let answer = client
            .post("/api/v1/teams", json!({"name": "T", "external_ref": "g"}))
            .await;
        assert_eq!(answer.json["external_ref"], "g");
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused_and_left_alone() {
        let db = temp_db("newer");
        let newer = SCHEMA_VERSION + 1;
        Connection::open(&db.path)
            .unwrap()
            .execute_batch(&format!(
                "CREATE TABLE future (x); PRAGMA user_version = {newer};"
            ))
            .unwrap();
        match open(&db) {
            Err(LegacyError::SchemaVersion { found, supported }) => {
                assert_eq!((found, supported), (newer, SCHEMA_VERSION));
            }
            other => panic!("expected a schema version error, got {other:?}"),
        }
        assert_eq!(user_version(&db), newer);
        let tables: i64 = Connection::open(&db.path)
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1, "nothing was created in the newer database");
    }
}
