//! Errors of the NS front end.
//!
//! Every failure, from an unbalanced brace to an event naming an unknown
//! object, becomes one [`NsError`]: the file, the line (and, for syntax
//! errors, the column) and a typed [`NsErrorKind`]. `Display` prints the
//! compiler-style `file:line: message` that editors and operators know, so a
//! message can be pasted straight into a bug report or jumped to.
//!
//! The kinds are typed rather than free text so that callers (and our tests)
//! can tell "the file uses Tcl we do not accept" from "the experiment is
//! wrong" without matching on wording; the wording itself always says what
//! to change.

use std::fmt;

/// What was wrong with the NS file.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NsErrorKind {
    /// The text is not well-formed Tcl (unbalanced quote, brace or bracket,
    /// characters after a closing quote, ...).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A command this front end does not accept (for example `proc`).
    #[error("unsupported command '{0}'")]
    UnsupportedCommand(String),
    /// A Tcl or NS feature that is recognised but deliberately not supported;
    /// the text says what to use instead.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// `$name` was read before anything was stored in it.
    #[error("can't read \"{0}\": no such variable")]
    UndefinedVariable(String),
    /// A command got the wrong number or shape of arguments.
    #[error("wrong arguments: should be \"{usage}\"")]
    WrongArgs {
        /// How the command is called.
        usage: String,
    },
    /// A name used where an NS object (node, link, program, ...) is expected
    /// does not name one.
    #[error("unknown object '{name}'{hint}")]
    UnknownObject {
        /// The name as written (after substitution).
        name: String,
        /// Extra advice, empty or starting with a space.
        hint: String,
    },
    /// An object of the wrong class was given (for example a link where a
    /// node is needed).
    #[error("'{name}' is a {found}, but {expected} is needed here")]
    WrongClass {
        /// The object's name.
        name: String,
        /// What was needed, with an article ("a Node").
        expected: String,
        /// The object's class.
        found: String,
    },
    /// A `$ns at` time that is not plain seconds.
    #[error("Invalid time spec '{0}': write plain seconds such as 10 or 2.5")]
    InvalidTime(String),
    /// A bandwidth that `parse_bw` rejects.
    #[error("invalid bandwidth '{spec}': {reason}")]
    InvalidBandwidth {
        /// The text as written.
        spec: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A delay that is not a non-negative number with an optional `ms`/`s`.
    #[error("invalid delay '{0}': write milliseconds such as 10ms, 0.5ms or 1s")]
    InvalidDelay(String),
    /// A packet loss rate outside 0..=1 or not a number.
    #[error("invalid loss rate '{0}': it must be a number from 0 to 1")]
    InvalidLossRate(String),
    /// Any other value that does not have the required form.
    #[error("invalid {what} '{value}': {reason}")]
    InvalidValue {
        /// What the value is for.
        what: String,
        /// The value as written.
        value: String,
        /// What it should look like.
        reason: String,
    },
    /// An event group whose members are not all of one class.
    #[error(
        "event group{} mixes classes: '{member}' is a {member_class} but earlier members are {group_class}; a group holds one class (links and LANs count as one)",
        quoted_name(.group)
    )]
    MixedGroup {
        /// The group, empty while it is being created by `$ns event-group`.
        group: String,
        /// The offending member.
        member: String,
        /// The member's class.
        member_class: String,
        /// The class of the group's first member.
        group_class: String,
    },
    /// More `$ns at` events than the documented maximum.
    #[error(
        "more than {limit} events; Emulab refuses such experiments, split the file or use fewer events"
    )]
    TooManyEvents {
        /// The maximum ([`crate::limits::MAX_EVENTS`]).
        limit: usize,
    },
    /// A resource cap that keeps memory and time bounded was exceeded.
    #[error("{what} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What grew too large.
        what: String,
        /// The cap.
        limit: u64,
    },
    /// Two objects or agents would have the same name.
    #[error("name '{name}' is already used by {other}")]
    NameConflict {
        /// The contested name.
        name: String,
        /// What already has it.
        other: String,
    },
    /// The experiment as a whole is inconsistent (an unnamed node, a
    /// program without a node, a traffic agent never connected, ...).
    #[error("{0}")]
    Invalid(String),
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(String),
}

/// ` 'name'` for a named object, nothing for one still being created.
fn quoted_name(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" '{name}'")
    }
}

/// A located error: file, line (1-based; 0 when the error concerns the
/// whole file), optional column, and what went wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct NsError {
    file: String,
    line: u32,
    column: Option<u32>,
    /// Boxed so that results carrying an error stay small.
    kind: Box<NsErrorKind>,
}

impl NsError {
    /// Builds an error for `file` at `line`.
    pub fn new(file: impl Into<String>, line: u32, kind: NsErrorKind) -> Self {
        NsError {
            file: file.into(),
            line,
            column: None,
            kind: Box::new(kind),
        }
    }

    /// An error located in the file being parsed; the file name is filled
    /// in by the entry point (see [`NsError::in_file`]).
    pub(crate) fn at(line: u32, kind: NsErrorKind) -> Self {
        NsError::new(String::new(), line, kind)
    }

    /// An error at a line and column.
    pub(crate) fn at_column(line: u32, column: u32, kind: NsErrorKind) -> Self {
        NsError {
            column: Some(column),
            ..NsError::at(line, kind)
        }
    }

    /// Sets the file name.
    pub(crate) fn in_file(mut self, file: &str) -> Self {
        self.file = file.to_string();
        self
    }

    /// The file name as given to the parser.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The 1-based line of the offending statement (0: the whole file).
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The 1-based column (in characters) where the problem was found, for
    /// syntax errors.
    pub fn column(&self) -> Option<u32> {
        self.column
    }

    /// What went wrong.
    pub fn kind(&self) -> &NsErrorKind {
        &self.kind
    }
}

impl fmt::Display for NsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.kind)
    }
}

impl std::error::Error for NsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.kind.as_ref())
    }
}

/// Shorthand for a result carrying a located error.
pub(crate) type NsResult<T> = Result<T, NsError>;

/// Shorthand for a result carrying an unlocated error kind; the caller adds
/// the line with [`Locate::at_line`].
pub(crate) type KindResult<T> = Result<T, NsErrorKind>;

/// Attaches a line to an unlocated result.
pub(crate) trait Locate<T> {
    /// Turns an [`NsErrorKind`] into an [`NsError`] at `line`.
    fn at_line(self, line: u32) -> NsResult<T>;
}

impl<T> Locate<T> for KindResult<T> {
    fn at_line(self, line: u32) -> NsResult<T> {
        self.map_err(|kind| NsError::at(line, kind))
    }
}

/// Builds a [`NsErrorKind::WrongArgs`].
pub(crate) fn usage(text: &str) -> NsErrorKind {
    NsErrorKind::WrongArgs {
        usage: text.to_string(),
    }
}
