//! The little SQL layer both database backends share.
//!
//! The SQLite and MySQL/MariaDB backends differ in how they connect, lock,
//! migrate and report errors, but not in what they store: the same Emulab
//! tables, the same columns, the same queries. So every query and every
//! row mapping is written once, against this module's [`Tx`] (one open
//! transaction) and [`Value`] (one column value), and each backend only
//! implements `Tx` for its driver ([`crate::sqlite`], [`crate::mysql`]).
//!
//! SQL written here sticks to what both engines accept: `?` placeholders,
//! backquoted identifiers where a name is reserved in MySQL (`` `groups` ``,
//! which SQLite also accepts), no upserts (a select then an insert or an
//! update, inside the transaction), and [`Dialect`] for the two places the
//! engines truly differ (how insertion order is kept, and the largest
//! statement a batched insert may build).

use crate::error::StoreError;

/// One column value, as both drivers can produce and bind it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Any integer column (booleans are 0/1).
    Int(i64),
    /// A floating-point column.
    Real(f64),
    /// A text column (MySQL dates arrive as `YYYY-MM-DD HH:MM:SS` text).
    Text(String),
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Value::Text(value.clone())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<u16> for Value {
    fn from(value: u16) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Real(value)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// One result row: its values in `SELECT` order.
#[derive(Debug)]
pub struct Row {
    /// The column values.
    pub values: Vec<Value>,
}

/// One row read with a table's column list, so mappings ask for columns
/// by name ([`crate::tables`]) and never by a position that a reordered
/// column list would silently shift.
pub struct Named<'r> {
    row: &'r mut Row,
    columns: &'static [&'static str],
}

impl<'r> Named<'r> {
    /// Pairs a row with the column list it was selected with.
    pub fn new(row: &'r mut Row, columns: &'static [&'static str]) -> Self {
        Named { row, columns }
    }

    fn at(&self, name: &str) -> Result<usize, ColumnError> {
        self.columns
            .iter()
            .position(|column| *column == name)
            .ok_or_else(|| format!("column `{name}` is not in the column list"))
    }

    /// See [`Row::text`].
    pub fn text(&mut self, name: &str) -> Result<String, ColumnError> {
        self.row
            .text(self.at(name)?)
            .map_err(|e| format!("{name}: {e}"))
    }

    /// See [`Row::opt_text`].
    pub fn opt_text(&mut self, name: &str) -> Result<Option<String>, ColumnError> {
        self.row
            .opt_text(self.at(name)?)
            .map_err(|e| format!("{name}: {e}"))
    }

    /// See [`Row::int`].
    pub fn int(&self, name: &str) -> Result<i64, ColumnError> {
        self.row
            .int(self.at(name)?)
            .map_err(|e| format!("{name}: {e}"))
    }

    /// See [`Row::int_as`].
    pub fn int_as<T: TryFrom<i64>>(&self, name: &str) -> Result<T, ColumnError> {
        self.row
            .int_as(self.at(name)?)
            .map_err(|e| format!("{name}: {e}"))
    }

    /// See [`Row::flag`].
    pub fn flag(&self, name: &str) -> Result<bool, ColumnError> {
        self.row
            .flag(self.at(name)?)
            .map_err(|e| format!("{name}: {e}"))
    }

    /// See [`Row::real`].
    pub fn real(&self, name: &str) -> Result<f64, ColumnError> {
        self.row
            .real(self.at(name)?)
            .map_err(|e| format!("{name}: {e}"))
    }
}

/// What a row accessor reports when a column does not hold what the
/// mapping expects: text for [`StoreError::Corrupt`].
pub type ColumnError = String;

impl Row {
    fn value(&self, column: usize) -> Result<&Value, ColumnError> {
        self.values
            .get(column)
            .ok_or_else(|| format!("column {column} is missing from the result"))
    }

    /// A text column that must not be NULL. The text is moved out of the
    /// row (each column is read once), which saves a copy per value on
    /// 100,000-row reads.
    pub fn text(&mut self, column: usize) -> Result<String, ColumnError> {
        if let Some(Value::Text(text)) = self.values.get_mut(column) {
            return Ok(std::mem::take(text));
        }
        match self.value(column)? {
            Value::Text(text) => Ok(text.clone()),
            Value::Int(number) => Ok(number.to_string()),
            Value::Real(number) => Ok(number.to_string()),
            Value::Null => Err(format!("column {column} is NULL where text is required")),
        }
    }

    /// A text column that may be NULL.
    pub fn opt_text(&mut self, column: usize) -> Result<Option<String>, ColumnError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            _ => self.text(column).map(Some),
        }
    }

    /// An integer column.
    pub fn int(&self, column: usize) -> Result<i64, ColumnError> {
        match self.value(column)? {
            Value::Int(number) => Ok(*number),
            Value::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| format!("column {column} holds `{text}` where an integer belongs")),
            Value::Real(number) if number.fract() == 0.0 => Ok(*number as i64),
            other => Err(format!(
                "column {column} holds {other:?} where an integer belongs"
            )),
        }
    }

    /// An integer column that must fit `T` (a `u32`, `u64`, `u16`, `u8`).
    pub fn int_as<T: TryFrom<i64>>(&self, column: usize) -> Result<T, ColumnError> {
        let number = self.int(column)?;
        T::try_from(number).map_err(|_| format!("column {column} holds {number}, out of range"))
    }

    /// A 0/1 flag column.
    pub fn flag(&self, column: usize) -> Result<bool, ColumnError> {
        Ok(self.int(column)? != 0)
    }

    /// A floating-point column.
    pub fn real(&self, column: usize) -> Result<f64, ColumnError> {
        match self.value(column)? {
            Value::Real(number) => Ok(*number),
            Value::Int(number) => Ok(*number as f64),
            Value::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| format!("column {column} holds `{text}` where a number belongs")),
            Value::Null => Err(format!("column {column} is NULL where a number belongs")),
        }
    }
}

/// Why a statement failed, as far as the shared code needs to know.
#[derive(Debug)]
pub enum DbError {
    /// A UNIQUE or PRIMARY KEY constraint refused the row; the text is the
    /// engine's own message.
    Duplicate(String),
    /// Anything else, already turned into an operator-facing error.
    Store(StoreError),
}

impl From<StoreError> for DbError {
    fn from(err: StoreError) -> Self {
        DbError::Store(err)
    }
}

/// `.or_store()?` for results where a duplicate is not expected: the
/// engine's message becomes [`StoreError::InvalidInput`].
pub trait OrStore<T> {
    /// Converts the error.
    fn or_store(self) -> Result<T, StoreError>;
}

impl<T> OrStore<T> for Result<T, DbError> {
    fn or_store(self) -> Result<T, StoreError> {
        self.map_err(|err| match err {
            DbError::Duplicate(message) => {
                StoreError::InvalidInput(format!("a row would be stored twice: {message}"))
            }
            DbError::Store(err) => err,
        })
    }
}

/// Where the two SQL engines differ in ways the shared queries must know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: `rowid` keeps insertion order.
    Sqlite,
    /// MySQL/MariaDB: an `AUTO_INCREMENT` column `seq` keeps insertion order.
    Mysql,
}

impl Dialect {
    /// The column that orders a table's rows as they were inserted.
    pub fn insertion_order(self) -> &'static str {
        match self {
            Dialect::Sqlite => "rowid",
            Dialect::Mysql => "seq",
        }
    }

    /// Most placeholders one batched `INSERT` may carry (SQLite's
    /// compiled-in limit is 32,766; MySQL's prepared statements take 65,535).
    pub fn max_placeholders(self) -> usize {
        match self {
            Dialect::Sqlite => 30_000,
            Dialect::Mysql => 60_000,
        }
    }
}

/// One open transaction on either engine.
pub trait Tx {
    /// The engine, for the few dialect-dependent queries.
    fn dialect(&self) -> Dialect;

    /// Where the database is, for error messages.
    fn location(&self) -> &str;

    /// Runs a query and hands each row to `each` as it arrives (one
    /// reused row buffer, no list of every row: a 100,000-event read
    /// allocates only what the caller keeps).
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(&mut Row) -> Result<(), DbError>,
    ) -> Result<(), DbError>;

    /// Runs a statement and returns the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;

    /// Turns a row-mapping complaint into [`StoreError::Corrupt`].
    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            location: self.location().to_owned(),
            detail,
        }
    }
}

impl dyn Tx + '_ {
    /// Runs a query and returns every row.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut rows = Vec::new();
        self.query_each(sql, params, &mut |row| {
            rows.push(Row {
                values: std::mem::take(&mut row.values),
            });
            Ok(())
        })?;
        Ok(rows)
    }

    /// The first row of a query, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).or_store()?.into_iter().next())
    }

    /// Maps every row of a query with `map`, naming `table` when a row does
    /// not fit.
    pub fn query_map<T>(
        &mut self,
        table: &str,
        sql: &str,
        params: &[Value],
        map: impl Fn(&mut Row) -> Result<T, ColumnError>,
    ) -> Result<Vec<T>, StoreError> {
        let location = self.location().to_owned();
        let mut out = Vec::new();
        self.query_each(sql, params, &mut |row| {
            let value = map(row).map_err(|detail| {
                DbError::Store(StoreError::Corrupt {
                    location: location.clone(),
                    detail: format!("a {table} row: {detail}"),
                })
            })?;
            out.push(value);
            Ok(())
        })
        .or_store()?;
        Ok(out)
    }

    /// Inserts many rows into `table`, several per statement (one round
    /// trip per batch is what makes 100,000 events load quickly from a
    /// server). A constraint violation comes back as [`DbError::Duplicate`].
    pub fn insert_rows(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<(), DbError> {
        if rows.is_empty() || columns.is_empty() {
            return Ok(());
        }
        let per_batch = (self.dialect().max_placeholders() / columns.len()).max(1);
        let one_row = format!("({})", vec!["?"; columns.len()].join(", "));
        for batch in rows.chunks(per_batch) {
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES {}",
                columns.join(", "),
                vec![one_row.as_str(); batch.len()].join(", ")
            );
            let params: Vec<Value> = batch.iter().flatten().cloned().collect();
            self.execute(&sql, &params)?;
        }
        Ok(())
    }
}
