//! The layout of `-h` and `--help` for the daemons.

/// A manual page: NAME, SYNOPSIS, DESCRIPTION from `before_help`, OPTIONS,
/// then `after_help` (clap's `help_template`).
pub const MANPAGE_HELP_TEMPLATE: &str = "\
NAME
    {name} - {about}

SYNOPSIS
    {usage}

{before-help}OPTIONS
{options}
{after-help}";
