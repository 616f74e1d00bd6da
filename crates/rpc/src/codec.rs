//! A small XML-RPC codec: method calls, responses and faults to and from
//! [`Value`]s.
//!
//! Written on quick-xml instead of taken from an XML-RPC crate because the
//! server faces the network: we need hard limits (nesting depth, document
//! size, element count) that are checked while parsing, not after a whole
//! tree has been built, and every malformed input must come back as a
//! [`CodecError`], never a panic. The value types are those of the XML-RPC
//! specification: `int`/`i4`, `boolean`, `string` (also a bare `<value>`
//! text), `double`, `dateTime.iso8601`, `base64`, `struct` and `array`, plus
//! the common `nil` extension for reading only. `i8` is accepted too.

use base64::Engine as _;
use quick_xml::Reader;
use quick_xml::events::Event;

/// Deepest nesting of arrays/structs accepted in a document.
pub const MAX_DEPTH: usize = 64;
/// Largest document accepted (the server's request limit is usually lower).
pub const MAX_DOCUMENT: usize = 256 * 1024 * 1024;

/// One XML-RPC value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `<int>` / `<i4>` (and `<i8>` on input).
    Int(i64),
    /// `<boolean>`: 0 or 1.
    Bool(bool),
    /// `<string>` or text directly inside `<value>`.
    String(String),
    /// `<double>`.
    Double(f64),
    /// `<dateTime.iso8601>`, kept as its text (`19980717T14:08:55`).
    DateTime(String),
    /// `<base64>`, decoded.
    Base64(Vec<u8>),
    /// `<struct>`: members in document order.
    Struct(Vec<(String, Value)>),
    /// `<array>`.
    Array(Vec<Value>),
    /// `<nil/>` (an extension; accepted on input only).
    Nil,
}

impl Value {
    /// A struct member by name.
    pub fn member(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer inside, if this is an int.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The array inside, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// A string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
}

/// A decoded `<methodCall>`.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodCall {
    /// `<methodName>`.
    pub method: String,
    /// `<params>`, in order.
    pub params: Vec<Value>,
}

/// A decoded `<methodResponse>`: a value or a fault.
#[derive(Clone, Debug, PartialEq)]
pub enum MethodResponse {
    /// `<params><param><value>`.
    Success(Value),
    /// `<fault>` with its `faultCode` and `faultString`.
    Fault {
        /// `faultCode`.
        code: i64,
        /// `faultString`.
        message: String,
    },
}

/// Why a document could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodecError {
    /// Not well-formed XML.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// Well-formed, but not the XML-RPC shape.
    #[error("not an XML-RPC document: {0}")]
    Shape(String),
    /// A scalar whose text does not parse as its type.
    #[error("bad {kind} value `{text}`")]
    Scalar {
        /// The element (`int`, `double`, ...).
        kind: &'static str,
        /// The offending text, shortened.
        text: String,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Larger than [`MAX_DOCUMENT`].
    #[error("document larger than {MAX_DOCUMENT} bytes")]
    TooLarge,
}

fn shape(what: impl Into<String>) -> CodecError {
    CodecError::Shape(what.into())
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------- encoding

/// Appends `text` with XML's special characters escaped.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
}

/// Appends one `<value>` element.
pub fn encode_value(out: &mut String, value: &Value) {
    use std::fmt::Write as _;
    out.push_str("<value>");
    match value {
        Value::Int(i) if i32::try_from(*i).is_ok() => {
            let _ = write!(out, "<int>{i}</int>");
        }
        Value::Int(i) => {
            let _ = write!(out, "<i8>{i}</i8>");
        }
        Value::Bool(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Value::String(s) => {
            out.push_str("<string>");
            escape_into(out, s);
            out.push_str("</string>");
        }
        Value::Double(d) => {
            // XML-RPC has no infinities or NaN; send 0 rather than invalid text.
            let d = if d.is_finite() { *d } else { 0.0 };
            let _ = write!(out, "<double>{d:?}</double>");
        }
        Value::DateTime(s) => {
            out.push_str("<dateTime.iso8601>");
            escape_into(out, s);
            out.push_str("</dateTime.iso8601>");
        }
        Value::Base64(bytes) => {
            out.push_str("<base64>");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
            out.push_str("</base64>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>");
            for (name, v) in members {
                out.push_str("<member><name>");
                escape_into(out, name);
                out.push_str("</name>");
                encode_value(out, v);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>");
            for v in items {
                encode_value(out, v);
            }
            out.push_str("</data></array>");
        }
        Value::Nil => out.push_str("<nil/>"),
    }
    out.push_str("</value>");
}

/// A whole `<methodCall>` document.
pub fn encode_call(method: &str, params: &[Value]) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?>\n<methodCall><methodName>");
    escape_into(&mut out, method);
    out.push_str("</methodName><params>");
    for p in params {
        out.push_str("<param>");
        encode_value(&mut out, p);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>\n");
    out
}

/// A whole `<methodResponse>` document.
pub fn encode_response(response: &MethodResponse) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?>\n<methodResponse>");
    match response {
        MethodResponse::Success(v) => {
            out.push_str("<params><param>");
            encode_value(&mut out, v);
            out.push_str("</param></params>");
        }
        MethodResponse::Fault { code, message } => {
            out.push_str("<fault>");
            encode_value(
                &mut out,
                &Value::Struct(vec![
                    ("faultCode".into(), Value::Int(*code)),
                    ("faultString".into(), Value::string(message.clone())),
                ]),
            );
            out.push_str("</fault>");
        }
    }
    out.push_str("</methodResponse>\n");
    out
}

// ---------------------------------------------------------------- decoding

/// A pull parser over the document's elements, skipping whitespace-only
/// text, comments, processing instructions and the XML declaration.
struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    peeked: Option<Tok>,
}

/// The parts of XML the codec cares about.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Start(String),
    /// `<x/>`.
    Empty(String),
    End(String),
    Text(String),
    Eof,
}

impl<'a> Parser<'a> {
    fn new(doc: &'a [u8]) -> Result<Self, CodecError> {
        if doc.len() > MAX_DOCUMENT {
            return Err(CodecError::TooLarge);
        }
        let mut reader = Reader::from_reader(doc);
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.expand_empty_elements = false;
        Ok(Parser {
            reader,
            peeked: None,
        })
    }

    /// The next token, with adjacent text and CDATA pieces joined.
    fn next(&mut self) -> Result<Tok, CodecError> {
        if let Some(tok) = self.peeked.take() {
            return Ok(tok);
        }
        let mut text: Option<String> = None;
        loop {
            let event = self
                .reader
                .read_event()
                .map_err(|e| CodecError::Xml(e.to_string()))?;
            let tok = match event {
                Event::Start(e) => Tok::Start(name_of(e.name().as_ref())?),
                Event::Empty(e) => Tok::Empty(name_of(e.name().as_ref())?),
                Event::End(e) => Tok::End(name_of(e.name().as_ref())?),
                Event::Text(t) => {
                    let piece = t
                        .decode()
                        .map_err(|e| CodecError::Xml(e.to_string()))?
                        .into_owned();
                    text.get_or_insert_default().push_str(&piece);
                    continue;
                }
                Event::GeneralRef(r) => {
                    let piece = resolve_entity(&r)?;
                    text.get_or_insert_default().push_str(&piece);
                    continue;
                }
                Event::CData(c) => {
                    let piece = std::str::from_utf8(&c)
                        .map_err(|e| CodecError::Xml(e.to_string()))?
                        .to_owned();
                    text.get_or_insert_default().push_str(&piece);
                    continue;
                }
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) => continue,
                Event::DocType(_) => return Err(shape("a DOCTYPE is not allowed")),
                Event::Eof => Tok::Eof,
            };
            if let Some(t) = text.take() {
                self.peeked = Some(tok);
                return Ok(Tok::Text(t));
            }
            return Ok(tok);
        }
    }

    /// The next token that is not whitespace-only text.
    fn next_significant(&mut self) -> Result<Tok, CodecError> {
        loop {
            match self.next()? {
                Tok::Text(t) if t.trim().is_empty() => continue,
                tok => return Ok(tok),
            }
        }
    }

    fn expect_start(&mut self, name: &str) -> Result<(), CodecError> {
        match self.next_significant()? {
            Tok::Start(n) if n == name => Ok(()),
            other => Err(shape(format!(
                "expected <{name}>, found {}",
                describe(&other)
            ))),
        }
    }

    fn expect_end(&mut self, name: &str) -> Result<(), CodecError> {
        match self.next_significant()? {
            Tok::End(n) if n == name => Ok(()),
            other => Err(shape(format!(
                "expected </{name}>, found {}",
                describe(&other)
            ))),
        }
    }

    /// The text of a simple element whose start tag was just read.
    fn text_until_end(&mut self, name: &str) -> Result<String, CodecError> {
        match self.next()? {
            Tok::Text(t) => {
                self.expect_end(name)?;
                Ok(t)
            }
            Tok::End(n) if n == name => Ok(String::new()),
            other => Err(shape(format!(
                "expected text in <{name}>, found {}",
                describe(&other)
            ))),
        }
    }

    /// A `<value>` element, after its start tag was read.
    fn value_body(&mut self, depth: usize) -> Result<Value, CodecError> {
        if depth > MAX_DEPTH {
            return Err(CodecError::TooDeep);
        }
        let tok = self.next()?;
        let (tok, leading_text) = match tok {
            Tok::Text(t) => (self.next()?, Some(t)),
            tok => (tok, None),
        };
        let value = match tok {
            Tok::End(n) if n == "value" => {
                return Ok(Value::String(leading_text.unwrap_or_default()));
            }
            Tok::Empty(n) => empty_scalar(&n)?,
            Tok::Start(n) => match n.as_str() {
                "struct" => self.struct_body(depth)?,
                "array" => self.array_body(depth)?,
                _ => {
                    let text = self.text_until_end(&n)?;
                    scalar(&n, &text)?
                }
            },
            other => {
                return Err(shape(format!("unexpected {} in <value>", describe(&other))));
            }
        };
        if leading_text.is_some_and(|t| !t.trim().is_empty()) {
            return Err(shape("text mixed with a typed value"));
        }
        self.expect_end("value")?;
        Ok(value)
    }

    fn struct_body(&mut self, depth: usize) -> Result<Value, CodecError> {
        let mut members = Vec::new();
        loop {
            match self.next_significant()? {
                Tok::End(n) if n == "struct" => return Ok(Value::Struct(members)),
                Tok::Start(n) if n == "member" => {
                    self.expect_start("name")?;
                    let name = self.text_until_end("name")?;
                    self.expect_start("value")?;
                    let value = self.value_body(depth + 1)?;
                    self.expect_end("member")?;
                    members.push((name, value));
                }
                other => {
                    return Err(shape(format!(
                        "expected <member>, found {}",
                        describe(&other)
                    )));
                }
            }
        }
    }

    fn array_body(&mut self, depth: usize) -> Result<Value, CodecError> {
        let mut items = Vec::new();
        match self.next_significant()? {
            Tok::Empty(n) if n == "data" => {}
            Tok::Start(n) if n == "data" => loop {
                match self.next_significant()? {
                    Tok::End(n) if n == "data" => break,
                    Tok::Start(n) if n == "value" => items.push(self.value_body(depth + 1)?),
                    Tok::Empty(n) if n == "value" => items.push(Value::String(String::new())),
                    other => {
                        return Err(shape(format!(
                            "expected <value> in <data>, found {}",
                            describe(&other)
                        )));
                    }
                }
            },
            other => {
                return Err(shape(format!(
                    "expected <data>, found {}",
                    describe(&other)
                )));
            }
        }
        self.expect_end("array")?;
        Ok(Value::Array(items))
    }

    /// `<params>` (after its start tag) as a list of values.
    fn params_body(&mut self) -> Result<Vec<Value>, CodecError> {
        let mut params = Vec::new();
        loop {
            match self.next_significant()? {
                Tok::End(n) if n == "params" => return Ok(params),
                Tok::Start(n) if n == "param" => {
                    self.expect_start("value")?;
                    params.push(self.value_body(1)?);
                    self.expect_end("param")?;
                }
                other => {
                    return Err(shape(format!(
                        "expected <param>, found {}",
                        describe(&other)
                    )));
                }
            }
        }
    }

    fn expect_eof(&mut self) -> Result<(), CodecError> {
        match self.next_significant()? {
            Tok::Eof => Ok(()),
            other => Err(shape(format!(
                "trailing {} after the document",
                describe(&other)
            ))),
        }
    }
}

fn name_of(raw: &[u8]) -> Result<String, CodecError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|e| CodecError::Xml(e.to_string()))
}

/// The five predefined entities and character references; anything else
/// (a DTD-defined entity) is refused, so no entity expansion attacks.
fn resolve_entity(r: &quick_xml::events::BytesRef<'_>) -> Result<String, CodecError> {
    if let Some(c) = r
        .resolve_char_ref()
        .map_err(|e| CodecError::Xml(e.to_string()))?
    {
        return Ok(c.to_string());
    }
    let name = r.decode().map_err(|e| CodecError::Xml(e.to_string()))?;
    let c = match name.as_ref() {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        other => {
            return Err(CodecError::Xml(format!(
                "unknown entity &{};",
                shorten(other)
            )));
        }
    };
    Ok(c.to_string())
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Start(n) => format!("<{}>", shorten(n)),
        Tok::Empty(n) => format!("<{}/>", shorten(n)),
        Tok::End(n) => format!("</{}>", shorten(n)),
        Tok::Text(t) => format!("text `{}`", shorten(t.trim())),
        Tok::Eof => "the end of the document".to_owned(),
    }
}

/// A self-closing typed element: `<string/>`, `<nil/>`, `<base64/>`.
fn empty_scalar(name: &str) -> Result<Value, CodecError> {
    match name {
        "nil" => Ok(Value::Nil),
        "string" => Ok(Value::String(String::new())),
        "base64" => Ok(Value::Base64(Vec::new())),
        "struct" => Ok(Value::Struct(Vec::new())),
        _ => scalar(name, ""),
    }
}

fn scalar(kind: &str, text: &str) -> Result<Value, CodecError> {
    let bad = |kind: &'static str| CodecError::Scalar {
        kind,
        text: shorten(text),
    };
    match kind {
        "int" | "i4" => text
            .trim()
            .parse::<i32>()
            .map(|i| Value::Int(i64::from(i)))
            .map_err(|_| bad("int")),
        "i8" => text
            .trim()
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| bad("i8")),
        "boolean" => match text.trim() {
            "0" => Ok(Value::Bool(false)),
            "1" => Ok(Value::Bool(true)),
            _ => Err(bad("boolean")),
        },
        "string" => Ok(Value::String(text.to_owned())),
        "double" => {
            let t = text.trim();
            let plain = !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
            match t.parse::<f64>() {
                Ok(d) if plain && d.is_finite() => Ok(Value::Double(d)),
                _ => Err(bad("double")),
            }
        }
        "dateTime.iso8601" => {
            let t = text.trim();
            if t.len() >= 8 && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(Value::DateTime(t.to_owned()))
            } else {
                Err(bad("dateTime.iso8601"))
            }
        }
        "base64" => {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map(Value::Base64)
                .map_err(|_| bad("base64"))
        }
        "nil" => Ok(Value::Nil),
        other => Err(shape(format!("unknown value type <{}>", shorten(other)))),
    }
}

/// Decodes a `<methodCall>` document.
pub fn decode_call(doc: &[u8]) -> Result<MethodCall, CodecError> {
    let mut p = Parser::new(doc)?;
    p.expect_start("methodCall")?;
    p.expect_start("methodName")?;
    let method = p.text_until_end("methodName")?.trim().to_owned();
    if method.is_empty() {
        return Err(shape("empty <methodName>"));
    }
    let params = match p.next_significant()? {
        Tok::Start(n) if n == "params" => {
            let params = p.params_body()?;
            p.expect_end("methodCall")?;
            params
        }
        Tok::Empty(n) if n == "params" => {
            p.expect_end("methodCall")?;
            Vec::new()
        }
        Tok::End(n) if n == "methodCall" => Vec::new(),
        other => {
            return Err(shape(format!(
                "expected <params>, found {}",
                describe(&other)
            )));
        }
    };
    p.expect_eof()?;
    Ok(MethodCall { method, params })
}

/// Decodes a `<methodResponse>` document.
pub fn decode_response(doc: &[u8]) -> Result<MethodResponse, CodecError> {
    let mut p = Parser::new(doc)?;
    p.expect_start("methodResponse")?;
    let response = match p.next_significant()? {
        Tok::Start(n) if n == "params" => {
            let mut params = p.params_body()?;
            if params.len() != 1 {
                return Err(shape("a response must carry exactly one value"));
            }
            MethodResponse::Success(params.remove(0))
        }
        Tok::Start(n) if n == "fault" => {
            p.expect_start("value")?;
            let v = p.value_body(1)?;
            p.expect_end("fault")?;
            let code = v
                .member("faultCode")
                .and_then(Value::as_int)
                .ok_or_else(|| shape("a fault without an int faultCode"))?;
            let message = v
                .member("faultString")
                .and_then(Value::as_str)
                .ok_or_else(|| shape("a fault without a faultString"))?
                .to_owned();
            MethodResponse::Fault { code, message }
        }
        other => {
            return Err(shape(format!(
                "expected <params> or <fault>, found {}",
                describe(&other)
            )));
        }
    };
    p.expect_end("methodResponse")?;
    p.expect_eof()?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request example of the XML-RPC specification.
    #[test]
    fn spec_request_example() {
        let doc = br#"<?xml version="1.0"?>
<methodCall>
   <methodName>examples.getStateName</methodName>
   <params>
      <param>
         <value><i4>41</i4></value>
         </param>
      </params>
   </methodCall>"#;
        let call = decode_call(doc).unwrap();
        assert_eq!(call.method, "examples.getStateName");
        assert_eq!(call.params, vec![Value::Int(41)]);
    }

    /// The response and fault examples of the specification.
    #[test]
    fn spec_response_and_fault_examples() {
        let ok = br#"<?xml version="1.0"?>
<methodResponse>
   <params>
      <param>
         <value><string>South Dakota</string></value>
         </param>
      </params>
   </methodResponse>"#;
        assert_eq!(
            decode_response(ok).unwrap(),
            MethodResponse::Success(Value::string("South Dakota"))
        );
        let fault = br#"<?xml version="1.0"?>
<methodResponse>
   <fault>
      <value>
         <struct>
            <member>
               <name>faultCode</name>
               <value><int>4</int></value>
               </member>
            <member>
               <name>faultString</name>
               <value><string>Too many parameters.</string></value>
               </member>
            </struct>
         </value>
      </fault>
   </methodResponse>"#;
        assert_eq!(
            decode_response(fault).unwrap(),
            MethodResponse::Fault {
                code: 4,
                message: "Too many parameters.".into()
            }
        );
    }

    /// Every scalar type, the struct and array examples, untyped strings.
    #[test]
    fn every_type_decodes() {
        let doc = br#"<methodCall><methodName>t</methodName><params>
<param><value><int>-12</int></value></param>
<param><value><boolean>1</boolean></value></param>
<param><value>plain &amp; simple</value></param>
<param><value><double>-12.214</double></value></param>
<param><value><dateTime.iso8601>19980717T14:08:55</dateTime.iso8601></value></param>
<param><value><base64>eW91IGNhbid0IHJlYWQgdGhpcyE=</base64></value></param>
<param><value><struct>
   <member><name>lowerBound</name><value><i4>18</i4></value></member>
   <member><name>upperBound</name><value><i4>139</i4></value></member>
</struct></value></param>
<param><value><array><data>
   <value><i4>12</i4></value>
   <value><string>Egypt</string></value>
   <value><boolean>0</boolean></value>
   <value><i4>-31</i4></value>
</data></array></value></param>
<param><value></value></param>
<param><value><string/></value></param>
<param><value><array><data/></array></value></param>
</params></methodCall>"#;
        let call = decode_call(doc).unwrap();
        assert_eq!(
            call.params,
            vec![
                Value::Int(-12),
                Value::Bool(true),
                Value::string("plain & simple"),
                Value::Double(-12.214),
                Value::DateTime("19980717T14:08:55".into()),
                Value::Base64(b"you can't read this!".to_vec()),
                Value::Struct(vec![
                    ("lowerBound".into(), Value::Int(18)),
                    ("upperBound".into(), Value::Int(139)),
                ]),
                Value::Array(vec![
                    Value::Int(12),
                    Value::string("Egypt"),
                    Value::Bool(false),
                    Value::Int(-31)
                ]),
                Value::string(""),
                Value::string(""),
                Value::Array(vec![]),
            ]
        );
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let params = vec![
            Value::Double(0.1),
            Value::Struct(vec![
                ("proj".into(), Value::string("p<&>\"'x")),
                ("n".into(), Value::Int(1 << 40)),
                ("b".into(), Value::Base64(vec![0, 1, 255])),
                ("t".into(), Value::DateTime("20260101T00:00:00".into())),
                ("ok".into(), Value::Bool(false)),
                (
                    "a".into(),
                    Value::Array(vec![
                        Value::string(" lead\r\nand trail "),
                        Value::Double(1e300),
                    ]),
                ),
            ]),
        ];
        let doc = encode_call("experiment.state", &params);
        let call = decode_call(doc.as_bytes()).unwrap();
        assert_eq!(call.method, "experiment.state");
        assert_eq!(call.params, params);
        for response in [
            MethodResponse::Success(Value::Array(vec![])),
            MethodResponse::Fault {
                code: 3,
                message: "no <way>".into(),
            },
        ] {
            let doc = encode_response(&response);
            assert_eq!(decode_response(doc.as_bytes()).unwrap(), response);
        }
    }

    #[test]
    fn bad_scalars_and_shapes_are_errors() {
        for (body, what) in [
            ("<int>12x</int>", "int"),
            ("<int>99999999999</int>", "int"),
            ("<boolean>yes</boolean>", "boolean"),
            ("<double>NaN</double>", "double"),
            ("<double>inf</double>", "double"),
            ("<base64>!!!</base64>", "base64"),
            ("<float>1</float>", "unknown"),
            ("<struct><member><name>x</name></member></struct>", "value"),
            ("<array><value/></array>", "data"),
        ] {
            let doc = format!(
                "<methodCall><methodName>m</methodName><params><param><value>{body}</value></param></params></methodCall>"
            );
            let err = decode_call(doc.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(what), "{body}: {err}");
        }
        for doc in [
            "",
            "<methodCall>",
            "<methodCall><methodName></methodName></methodCall>",
            "<methodCall><methodName>m</methodName></methodCall><x/>",
            "<a>&xxe;</a>",
            "<!DOCTYPE x [<!ENTITY a \"b\">]><methodCall/>",
            "<methodCall><methodName>m</methodName><params><param><value><int>1</i4></value></param></params></methodCall>",
        ] {
            assert!(decode_call(doc.as_bytes()).is_err(), "{doc}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let depth = 100_000;
        let mut doc = String::from("<methodCall><methodName>m</methodName><params><param><value>");
        for _ in 0..depth {
            doc.push_str("<array><data><value>");
        }
        assert_eq!(decode_call(doc.as_bytes()), Err(CodecError::TooDeep));
        let mut ok = String::from("<methodCall><methodName>m</methodName><params><param><value>");
        for _ in 0..MAX_DEPTH - 1 {
            ok.push_str("<array><data><value>");
        }
        ok.push_str("<int>1</int>");
        for _ in 0..MAX_DEPTH - 1 {
            ok.push_str("</value></data></array>");
        }
        ok.push_str("</value></param></params></methodCall>");
        assert!(decode_call(ok.as_bytes()).is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        let seeds: [&[u8]; 6] = [
            b"<methodCall><methodName>m</methodName><params><param><value><struct><member><name>a</name><value><i4>1</i4></value></member></struct></value></param></params></methodCall>",
            b"<methodResponse><fault><value><struct></struct></value></fault></methodResponse>",
            b"\xff\xfe<\x00",
            b"<<<<>>>>&&&;;",
            b"<methodCall><methodName>\xc3</methodName></methodCall>",
            b"<![CDATA[x]]>",
        ];
        // Every prefix and single-byte corruption of each seed.
        for seed in seeds {
            for cut in 0..=seed.len() {
                let _ = decode_call(&seed[..cut]);
                let _ = decode_response(&seed[..cut]);
            }
            for i in 0..seed.len() {
                let mut bad = seed.to_vec();
                bad[i] = bad[i].wrapping_add(1);
                let _ = decode_call(&bad);
                let _ = decode_response(&bad);
            }
        }
    }
}
