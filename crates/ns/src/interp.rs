//! The interpreter: evaluates parsed commands against the experiment.
//!
//! This is deliberately not Tcl. It has variables (`set`, arrays as
//! `name(index)`), substitution, the handful of built-in commands Emulab NS
//! files use (`source`, `set`, `new`, `list`, `incr`, `expr`, `for`,
//! `foreach`), the `tb-*` commands, and method calls on NS objects
//! (`$ns node`, `$n0 program-agent ...`). Any other command is refused by
//! name, with its line, instead of being half-understood.
//!
//! Every loop and every substitution draws on the budgets in
//! [`crate::limits`], so a hostile file ends in a clear error after bounded
//! work: commands run, loop iterations, bytes produced, bytes held in
//! variables, nesting depth.

use std::collections::HashMap;

use crate::error::{Locate, NsError, NsErrorKind, NsResult, usage};
use crate::experiment::{Arg, Experiment};
use crate::expr;
use crate::limits::{
    MAX_COMMANDS, MAX_LOOP_ITERATIONS, MAX_NESTING, MAX_STRING_BYTES, MAX_VARIABLE_BYTES,
    MAX_VARIABLES, MAX_WORK_BYTES,
};
use crate::list;
use crate::parser::{self, Command, Part};

/// Interpreter state: variables, budgets and the experiment being built.
pub(crate) struct Interp {
    vars: HashMap<String, String>,
    var_bytes: usize,
    commands_run: u64,
    loop_iterations: u64,
    work_bytes: u64,
    depth: u32,
    experiment: Experiment,
}

impl Interp {
    pub(crate) fn new() -> Self {
        Interp {
            vars: HashMap::new(),
            var_bytes: 0,
            commands_run: 0,
            loop_iterations: 0,
            work_bytes: 0,
            depth: 0,
            experiment: Experiment::new(),
        }
    }

    /// Hands over the experiment once the script has run.
    pub(crate) fn into_experiment(self) -> Experiment {
        self.experiment
    }

    /// Evaluates commands in order; the result is the last command's.
    pub(crate) fn eval(&mut self, commands: &[Command]) -> NsResult<String> {
        let mut result = String::new();
        for command in commands {
            result = self.eval_command(command)?;
        }
        Ok(result)
    }

    /// Parses and evaluates a script given as a word (a loop body).
    fn eval_text(&mut self, arg: &Arg) -> NsResult<String> {
        let commands = parser::parse_script(&arg.value, arg.line)?;
        self.nested(arg.line, |interp| interp.eval(&commands))
    }

    /// Runs `f` one nesting level deeper, refusing past the cap.
    fn nested<T>(&mut self, line: u32, f: impl FnOnce(&mut Self) -> NsResult<T>) -> NsResult<T> {
        if self.depth >= MAX_NESTING {
            return Err(NsError::at(
                line,
                NsErrorKind::LimitExceeded {
                    what: "nesting of [...] and loop bodies".into(),
                    limit: u64::from(MAX_NESTING),
                },
            ));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn eval_command(&mut self, command: &Command) -> NsResult<String> {
        self.commands_run += 1;
        if self.commands_run > MAX_COMMANDS {
            return Err(NsError::at(
                command.line,
                NsErrorKind::LimitExceeded {
                    what: "number of commands run".into(),
                    limit: MAX_COMMANDS,
                },
            ));
        }
        let mut args = Vec::with_capacity(command.words.len());
        for word in &command.words {
            let value = self.substitute(&word.parts, command.line)?;
            args.push(Arg {
                value,
                line: word.line,
            });
        }
        let line = command.line;
        let Some((name, rest)) = args.split_first() else {
            return Ok(String::new());
        };
        if self.experiment.has_run() {
            return Err(NsError::at(
                line,
                NsErrorKind::Invalid(format!(
                    "'{}' comes after '$ns run'; Emulab ignores everything after it, so move it before",
                    name.value
                )),
            ));
        }
        if let Some(id) = self.experiment.lookup(&name.value) {
            return self.experiment.call(id, rest, line);
        }
        match name.value.as_str() {
            "set" => self.cmd_set(rest, line),
            "source" => cmd_source(rest, line),
            "new" => self.experiment.new_object(rest, line),
            "list" => Ok(list::join(
                &rest.iter().map(|a| a.value.as_str()).collect::<Vec<_>>(),
            )),
            "incr" => self.cmd_incr(rest, line),
            "expr" => self.cmd_expr(rest, line),
            "for" => self.cmd_for(rest, line),
            "foreach" => self.cmd_foreach(rest, line),
            other => {
                if let Some(result) = self.experiment.tb_command(other, rest, line) {
                    return result;
                }
                if other.starts_with('$') {
                    // A braced `{$x ...}` reaching here was never substituted.
                    return Err(NsError::at(line, crate::experiment::unknown_object(other)));
                }
                // A leftover temporary handle (`_o3`) or an empty word is a
                // missing object, not a command; anything else (`proc`,
                // `if`, `puts`, ...) is a command we do not accept.
                let kind = if other.starts_with('_') || other.is_empty() {
                    crate::experiment::unknown_object(other)
                } else {
                    NsErrorKind::UnsupportedCommand(other.to_string())
                };
                Err(NsError::at(line, kind))
            }
        }
    }

    /// Substitutes a word's parts into one string.
    fn substitute(&mut self, parts: &[Part], line: u32) -> NsResult<String> {
        // A single literal is by far the most common word: no copy budget
        // beyond its own length.
        let mut out = String::new();
        for part in parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable { name, index, line } => {
                    let key = match index {
                        None => name.clone(),
                        Some(index_parts) => {
                            let index =
                                self.nested(*line, |interp| interp.substitute(index_parts, *line))?;
                            format!("{name}({index})")
                        }
                    };
                    let value = self.vars.get(&key).ok_or_else(|| {
                        NsError::at(*line, NsErrorKind::UndefinedVariable(key.clone()))
                    })?;
                    if out.len().saturating_add(value.len()) > MAX_STRING_BYTES {
                        return Err(string_too_long(*line));
                    }
                    out.push_str(value);
                }
                Part::Script(commands) => {
                    let first_line = commands.first().map_or(line, |c| c.line);
                    let value = self.nested(first_line, |interp| interp.eval(commands))?;
                    out.push_str(&value);
                }
            }
            if out.len() > MAX_STRING_BYTES {
                return Err(string_too_long(line));
            }
        }
        self.work_bytes = self.work_bytes.saturating_add(out.len() as u64);
        if self.work_bytes > MAX_WORK_BYTES {
            return Err(NsError::at(
                line,
                NsErrorKind::LimitExceeded {
                    what: "total bytes produced by substitution".into(),
                    limit: MAX_WORK_BYTES,
                },
            ));
        }
        Ok(out)
    }

    fn store(&mut self, key: String, value: String, line: u32) -> NsResult<()> {
        let old_len = self.vars.get(&key).map(|v| key.len() + v.len());
        if old_len.is_none() && self.vars.len() >= MAX_VARIABLES {
            return Err(NsError::at(
                line,
                NsErrorKind::LimitExceeded {
                    what: "number of variables".into(),
                    limit: MAX_VARIABLES as u64,
                },
            ));
        }
        let new_total = self
            .var_bytes
            .saturating_sub(old_len.unwrap_or(0))
            .saturating_add(key.len() + value.len());
        if new_total > MAX_VARIABLE_BYTES {
            return Err(NsError::at(
                line,
                NsErrorKind::LimitExceeded {
                    what: "bytes held in variables".into(),
                    limit: MAX_VARIABLE_BYTES as u64,
                },
            ));
        }
        self.var_bytes = new_total;
        self.vars.insert(key, value);
        Ok(())
    }

    /// `set VAR ?VALUE?`. Storing a new object's handle names the object
    /// after the variable (see [`Experiment::adopt_name`]).
    fn cmd_set(&mut self, args: &[Arg], line: u32) -> NsResult<String> {
        match args {
            [var] => self.vars.get(&var.value).cloned().ok_or_else(|| {
                NsError::at(line, NsErrorKind::UndefinedVariable(var.value.clone()))
            }),
            [var, value] => {
                let value = match self
                    .experiment
                    .adopt_name(&value.value, &var.value)
                    .at_line(line)?
                {
                    Some(name) => name,
                    None => value.value.clone(),
                };
                self.store(var.value.clone(), value.clone(), line)?;
                Ok(value)
            }
            _ => Err(NsError::at(line, usage("set VARIABLE ?VALUE?"))),
        }
    }

    /// `incr VAR ?AMOUNT?` (a missing variable counts as 0, as in Tcl 8.5).
    fn cmd_incr(&mut self, args: &[Arg], line: u32) -> NsResult<String> {
        let (var, amount) = match args {
            [var] => (var, 1),
            [var, amount] => (
                var,
                expr::parse_int(&amount.value).ok_or_else(|| {
                    NsError::at(
                        line,
                        NsErrorKind::InvalidValue {
                            what: "incr amount".into(),
                            value: amount.value.clone(),
                            reason: "it must be an integer".into(),
                        },
                    )
                })?,
            ),
            _ => return Err(NsError::at(line, usage("incr VARIABLE ?AMOUNT?"))),
        };
        let current = match self.vars.get(&var.value) {
            None => 0,
            Some(text) => expr::parse_int(text).ok_or_else(|| {
                NsError::at(
                    line,
                    NsErrorKind::InvalidValue {
                        what: format!("variable {}", var.value),
                        value: text.clone(),
                        reason: "incr needs an integer".into(),
                    },
                )
            })?,
        };
        let next = current.checked_add(amount).ok_or_else(|| {
            NsError::at(
                line,
                NsErrorKind::Invalid("integer overflow in incr".into()),
            )
        })?;
        let text = next.to_string();
        self.store(var.value.clone(), text.clone(), line)?;
        Ok(text)
    }

    /// Evaluates an expression text (substituting it first, as `expr` does
    /// with a braced argument).
    fn evaluate(&mut self, text: &str, line: u32) -> NsResult<i64> {
        let parts = parser::parse_template(text, line)?;
        self.evaluate_parts(&parts, line)
    }

    /// Evaluates an already parsed expression (a loop condition is parsed
    /// once, then substituted and evaluated on every iteration).
    fn evaluate_parts(&mut self, parts: &[Part], line: u32) -> NsResult<i64> {
        let substituted = self.substitute(parts, line)?;
        expr::evaluate(&substituted).map_err(|message| {
            NsError::at(
                line,
                NsErrorKind::InvalidValue {
                    what: "expression".into(),
                    value: substituted.chars().take(80).collect(),
                    reason: message,
                },
            )
        })
    }

    fn cmd_expr(&mut self, args: &[Arg], line: u32) -> NsResult<String> {
        if args.is_empty() {
            return Err(NsError::at(line, usage("expr EXPRESSION")));
        }
        let text = args
            .iter()
            .map(|a| a.value.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(self.evaluate(&text, line)?.to_string())
    }

    fn count_iteration(&mut self, line: u32) -> NsResult<()> {
        self.loop_iterations += 1;
        if self.loop_iterations > MAX_LOOP_ITERATIONS {
            return Err(NsError::at(
                line,
                NsErrorKind::LimitExceeded {
                    what: "number of loop iterations".into(),
                    limit: MAX_LOOP_ITERATIONS,
                },
            ));
        }
        Ok(())
    }

    /// `for INIT CONDITION NEXT BODY`.
    fn cmd_for(&mut self, args: &[Arg], line: u32) -> NsResult<String> {
        let [init, condition, next, body] = args else {
            return Err(NsError::at(
                line,
                usage("for {INIT} {CONDITION} {NEXT} {BODY}"),
            ));
        };
        let condition_parts = parser::parse_template(&condition.value, condition.line)?;
        let next_commands = parser::parse_script(&next.value, next.line)?;
        let body_commands = parser::parse_script(&body.value, body.line)?;
        self.eval_text(init)?;
        self.nested(line, |interp| {
            while interp.evaluate_parts(&condition_parts, condition.line)? != 0 {
                interp.count_iteration(line)?;
                interp.eval(&body_commands)?;
                interp.eval(&next_commands)?;
            }
            Ok(())
        })?;
        Ok(String::new())
    }

    /// `foreach VAR LIST BODY` or `foreach {VAR1 VAR2} LIST BODY`.
    fn cmd_foreach(&mut self, args: &[Arg], line: u32) -> NsResult<String> {
        let [vars, items, body] = args else {
            return Err(NsError::at(line, usage("foreach VARIABLE LIST {BODY}")));
        };
        let names = list::split(&vars.value).map_err(|m| {
            NsError::at(
                line,
                NsErrorKind::Syntax(format!("foreach variable list: {m}")),
            )
        })?;
        if names.is_empty() {
            return Err(NsError::at(line, usage("foreach VARIABLE LIST {BODY}")));
        }
        let items = list::split(&items.value)
            .map_err(|m| NsError::at(line, NsErrorKind::Syntax(format!("foreach list: {m}"))))?;
        let body_commands = parser::parse_script(&body.value, body.line)?;
        self.nested(line, |interp| {
            for chunk in items.chunks(names.len()) {
                interp.count_iteration(line)?;
                for (i, name) in names.iter().enumerate() {
                    // Missing trailing values are empty, as in Tcl.
                    let value = chunk.get(i).cloned().unwrap_or_default();
                    interp.store(name.clone(), value, line)?;
                }
                interp.eval(&body_commands)?;
            }
            Ok(())
        })?;
        Ok(String::new())
    }
}

/// `source tb_compat.tcl`: Emulab's compatibility library, which defines
/// the `tb-*` commands we implement directly. Any other file is refused.
fn cmd_source(args: &[Arg], line: u32) -> NsResult<String> {
    let [file] = args else {
        return Err(NsError::at(line, usage("source tb_compat.tcl")));
    };
    let base = file.value.rsplit('/').next().unwrap_or("");
    if base == "tb_compat.tcl" {
        Ok(String::new())
    } else {
        Err(NsError::at(
            line,
            NsErrorKind::Unsupported(format!(
                "sourcing '{}': only 'source tb_compat.tcl' is accepted; put everything in one file",
                file.value
            )),
        ))
    }
}

fn string_too_long(line: u32) -> NsError {
    NsError::at(
        line,
        NsErrorKind::LimitExceeded {
            what: "length of a string in bytes".into(),
            limit: MAX_STRING_BYTES as u64,
        },
    )
}
