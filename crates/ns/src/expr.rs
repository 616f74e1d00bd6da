//! Integer arithmetic for `expr`, `for` conditions and `incr`.
//!
//! Emulab NS files use `expr` for loop bounds, counters and computed event
//! times (`[expr $i * 10]`), always on integers. We evaluate exactly that:
//! 64-bit integers with Tcl's operators and precedence (unary `- + !`,
//! `* / %`, `+ -`, `< > <= >=`, `== !=`, `&&`, `||`) and parentheses.
//! Division rounds toward negative infinity and `%` takes the divisor's sign,
//! as in Tcl. Overflow, division by zero and floating-point operands are
//! errors rather than silent wrong answers. The input has already been
//! substituted by the interpreter, so only numbers and operators remain.
//!
//! Recursion depth (parentheses and chains of unary operators) is capped so
//! no expression can exhaust the stack.

use crate::limits::MAX_NESTING;

/// Evaluates an integer expression, or explains why it cannot be.
pub(crate) fn evaluate(text: &str) -> Result<i64, String> {
    let tokens = tokenize(text)?;
    let mut parser = ExprParser {
        tokens: &tokens,
        pos: 0,
        depth: 0,
    };
    let value = parser.or()?;
    if parser.pos != tokens.len() {
        return Err(format!("unexpected text in expression \"{text}\""));
    }
    Ok(value)
}

/// Parses a Tcl integer (optional sign, decimal, or `0x` hex).
pub(crate) fn parse_int(text: &str) -> Option<i64> {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, trimmed.get(1..)?),
        Some(b'+') => (false, trimmed.get(1..)?),
        _ => (false, trimmed),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        i64::from_str_radix(hex, 16).ok()?
    } else {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok()?
    };
    if negative {
        magnitude.checked_neg()
    } else {
        Some(magnitude)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(i64),
    Op(&'static str),
    Open,
    Close,
}

const OPERATORS: [&str; 16] = [
    "<=", ">=", "==", "!=", "&&", "||", "<", ">", "+", "-", "*", "/", "%", "!", "(", ")",
];

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(tokens);
        }
        if rest.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                .unwrap_or(rest.len());
            let (number, tail) = rest.split_at(end);
            if number.contains('.') || number.contains(['e', 'E']) && !number.starts_with("0x") {
                return Err(format!(
                    "\"{number}\" is not an integer; expr here does integer arithmetic only"
                ));
            }
            let value = parse_int(number)
                .ok_or_else(|| format!("\"{number}\" is not an integer (or is too large)"))?;
            tokens.push(Token::Number(value));
            rest = tail;
            continue;
        }
        let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) else {
            let word: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace())
                .take(40)
                .collect();
            return Err(format!(
                "\"{word}\" is not an integer or operator; expr here does integer arithmetic only"
            ));
        };
        tokens.push(match *op {
            "(" => Token::Open,
            ")" => Token::Close,
            other => Token::Op(other),
        });
        rest = rest.get(op.len()..).unwrap_or("");
    }
}

struct ExprParser<'t> {
    tokens: &'t [Token],
    pos: usize,
    depth: u32,
}

impl ExprParser<'_> {
    fn peek_op(&self) -> Option<&'static str> {
        match self.tokens.get(self.pos) {
            Some(Token::Op(op)) => Some(op),
            _ => None,
        }
    }

    fn binary(
        &mut self,
        ops: &[&'static str],
        next: fn(&mut Self) -> Result<i64, String>,
        apply: fn(&'static str, i64, i64) -> Result<i64, String>,
    ) -> Result<i64, String> {
        let mut left = next(self)?;
        while let Some(op) = self.peek_op().filter(|op| ops.contains(op)) {
            self.pos += 1;
            let right = next(self)?;
            left = apply(op, left, right)?;
        }
        Ok(left)
    }

    fn or(&mut self) -> Result<i64, String> {
        self.binary(&["||"], Self::and, |_, a, b| {
            Ok(i64::from(a != 0 || b != 0))
        })
    }

    fn and(&mut self) -> Result<i64, String> {
        self.binary(&["&&"], Self::equality, |_, a, b| {
            Ok(i64::from(a != 0 && b != 0))
        })
    }

    fn equality(&mut self) -> Result<i64, String> {
        self.binary(&["==", "!="], Self::relational, |op, a, b| {
            Ok(i64::from(if op == "==" { a == b } else { a != b }))
        })
    }

    fn relational(&mut self) -> Result<i64, String> {
        self.binary(&["<", ">", "<=", ">="], Self::additive, |op, a, b| {
            Ok(i64::from(match op {
                "<" => a < b,
                ">" => a > b,
                "<=" => a <= b,
                _ => a >= b,
            }))
        })
    }

    fn additive(&mut self) -> Result<i64, String> {
        self.binary(&["+", "-"], Self::multiplicative, |op, a, b| {
            let result = if op == "+" {
                a.checked_add(b)
            } else {
                a.checked_sub(b)
            };
            result.ok_or_else(|| OVERFLOW.to_string())
        })
    }

    fn multiplicative(&mut self) -> Result<i64, String> {
        self.binary(&["*", "/", "%"], Self::unary, |op, a, b| match op {
            "*" => a.checked_mul(b).ok_or_else(|| OVERFLOW.to_string()),
            _ if b == 0 => Err("divide by zero".to_string()),
            "/" => floor_div(a, b).ok_or_else(|| OVERFLOW.to_string()),
            _ => floor_mod(a, b).ok_or_else(|| OVERFLOW.to_string()),
        })
    }

    fn unary(&mut self) -> Result<i64, String> {
        if let Some(op) = self.peek_op().filter(|op| matches!(*op, "-" | "+" | "!")) {
            self.pos += 1;
            self.descend()?;
            let value = self.unary();
            self.depth -= 1;
            let value = value?;
            return match op {
                "-" => value.checked_neg().ok_or_else(|| OVERFLOW.to_string()),
                "+" => Ok(value),
                _ => Ok(i64::from(value == 0)),
            };
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<i64, String> {
        match self.tokens.get(self.pos) {
            Some(Token::Number(n)) => {
                self.pos += 1;
                Ok(*n)
            }
            Some(Token::Open) => {
                self.pos += 1;
                self.descend()?;
                let value = self.or();
                self.depth -= 1;
                let value = value?;
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return Err("missing ')' in expression".to_string());
                }
                self.pos += 1;
                Ok(value)
            }
            Some(_) => Err("missing operand in expression".to_string()),
            None => Err("expression ends where an operand is needed".to_string()),
        }
    }

    fn descend(&mut self) -> Result<(), String> {
        if self.depth >= MAX_NESTING {
            return Err(format!(
                "expression nested deeper than {MAX_NESTING} levels"
            ));
        }
        self.depth += 1;
        Ok(())
    }
}

const OVERFLOW: &str = "integer overflow in expression";

fn floor_div(a: i64, b: i64) -> Option<i64> {
    let q = a.checked_div(b)?;
    if (a % b != 0) && ((a < 0) != (b < 0)) {
        q.checked_sub(1)
    } else {
        Some(q)
    }
}

fn floor_mod(a: i64, b: i64) -> Option<i64> {
    let r = a.checked_rem(b)?;
    if r != 0 && ((r < 0) != (b < 0)) {
        r.checked_add(b)
    } else {
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_parentheses() {
        assert_eq!(evaluate("1 + 2 * 3").unwrap(), 7);
        assert_eq!(evaluate("(1 + 2) * 3").unwrap(), 9);
        assert_eq!(evaluate("10 - 4 - 3").unwrap(), 3);
        assert_eq!(evaluate("-2 * -3").unwrap(), 6);
        assert_eq!(evaluate("3 < 4 && 4 <= 4 || 0").unwrap(), 1);
        assert_eq!(evaluate("!(2 == 2)").unwrap(), 0);
        assert_eq!(evaluate("0x10 + 1").unwrap(), 17);
    }

    #[test]
    fn tcl_division_rounds_down() {
        assert_eq!(evaluate("7 / 2").unwrap(), 3);
        assert_eq!(evaluate("-7 / 2").unwrap(), -4);
        assert_eq!(evaluate("-7 % 2").unwrap(), 1);
        assert_eq!(evaluate("7 % -2").unwrap(), -1);
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        assert!(evaluate("1 / 0").unwrap_err().contains("divide by zero"));
        assert!(
            evaluate("9223372036854775807 + 1")
                .unwrap_err()
                .contains("overflow")
        );
        assert!(
            evaluate("-9223372036854775807 - 2")
                .unwrap_err()
                .contains("overflow")
        );
        assert!(evaluate("1.5 * 2").unwrap_err().contains("integer"));
        assert!(evaluate("abc").is_err());
        assert!(evaluate("1 +").is_err());
        assert!(evaluate("(1").is_err());
        assert!(evaluate(&format!("{}1{}", "(".repeat(500), ")".repeat(500))).is_err());
        assert!(evaluate(&format!("{}1", "-".repeat(500))).is_err());
    }
}
