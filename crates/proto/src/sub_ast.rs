//! Subscription syntax trees as carried on the wire (docs/protocol.md §13.2).
//!
//! The quench notifications SubAddNotify and SubModNotify (packets 84 and 85)
//! carry a subscription expression as a tree rather than as text. This crate
//! only needs to move such trees through the codec intact, so the
//! representation is deliberately generic: a node is its numeric node code
//! plus either a leaf value or a list of children. The meaning of the codes
//! (which differ between the Elvin draft and Avis; see [`draft_code`]) is
//! left to whoever builds or reads the tree.
//!
//! Wire layout of a node: int32 node code; for code 0 (the empty tree)
//! nothing more; otherwise an int32 base type (0 for a composite node, or the
//! value type code 1–5 of a leaf) followed by either the leaf's value payload
//! or an int32 child count and the children.
//!
//! Decoding is recursive, so it is bounded by [`MAX_SUB_AST_DEPTH`]; a
//! deeper tree is rejected with [`DecodeErrorKind::NestingTooDeep`] instead
//! of exhausting the stack.

use std::num::NonZeroI32;

use crate::error::DecodeErrorKind;
use crate::value::{Value, ValueType};
use crate::xdr::{self, Reader, XdrResult};

/// Deepest tree the decoder accepts (the root is depth 1). Real
/// subscriptions nest a handful of levels; 64 leaves ample room while
/// keeping recursion shallow.
pub const MAX_SUB_AST_DEPTH: usize = 64;

/// Node codes of the Elvin client protocol draft -07 (also used by Mantara
/// clients for quench). Avis numbers some operators differently; see the
/// protocol notes.
pub mod draft_code {
    /// The empty tree ("false" filter).
    pub const EMPTY: i32 = 0;
    /// An attribute name (a string leaf).
    pub const NAME: i32 = 1;
    /// An int32 constant.
    pub const CONST_INT32: i32 = 2;
    /// An int64 constant.
    pub const CONST_INT64: i32 = 3;
    /// A real64 constant.
    pub const CONST_REAL64: i32 = 4;
    /// A string constant.
    pub const CONST_STRING: i32 = 5;
    /// `==`
    pub const EQUALS: i32 = 8;
    /// `!=`
    pub const NOT_EQUALS: i32 = 9;
    /// `<`
    pub const LESS_THAN: i32 = 10;
    /// `<=`
    pub const LESS_THAN_EQUALS: i32 = 11;
    /// `>`
    pub const GREATER_THAN: i32 = 12;
    /// `>=`
    pub const GREATER_THAN_EQUALS: i32 = 13;
    /// `||`
    pub const OR: i32 = 16;
    /// `^^`
    pub const XOR: i32 = 17;
    /// `&&`
    pub const AND: i32 = 18;
    /// `!`
    pub const NOT: i32 = 19;
    /// unary `+`
    pub const UNARY_PLUS: i32 = 20;
    /// unary `-`
    pub const UNARY_MINUS: i32 = 21;
    /// `*`
    pub const MULTIPLY: i32 = 22;
    /// `/`
    pub const DIVIDE: i32 = 23;
    /// `%`
    pub const MODULO: i32 = 24;
    /// `+`
    pub const ADD: i32 = 25;
    /// `-`
    pub const SUBTRACT: i32 = 26;
    /// `<<`
    pub const SHIFT_LEFT: i32 = 27;
    /// `>>`
    pub const SHIFT_RIGHT: i32 = 28;
    /// `>>>`
    pub const LOGICAL_SHIFT_RIGHT: i32 = 29;
    /// `&`
    pub const BIT_AND: i32 = 30;
    /// `^`
    pub const BIT_XOR: i32 = 31;
    /// `|`
    pub const BIT_OR: i32 = 32;
    /// `~`
    pub const BIT_NEGATE: i32 = 33;
    /// `int32()`
    pub const IS_INT32: i32 = 40;
    /// `int64()`
    pub const IS_INT64: i32 = 41;
    /// `real64()`
    pub const IS_REAL64: i32 = 42;
    /// `string()`
    pub const IS_STRING: i32 = 43;
    /// `opaque()`
    pub const IS_OPAQUE: i32 = 44;
    /// `nan()`
    pub const IS_NAN: i32 = 45;
    /// `begins-with()`
    pub const BEGINS_WITH: i32 = 48;
    /// `contains()`
    pub const CONTAINS: i32 = 49;
    /// `ends-with()`
    pub const ENDS_WITH: i32 = 50;
    /// `wildcard()`
    pub const WILDCARD: i32 = 51;
    /// `regex()`
    pub const REGEX: i32 = 52;
    /// `fold-case()`
    pub const FOLD_CASE: i32 = 56;
    /// `decompose()`
    pub const DECOMPOSE: i32 = 57;
    /// `decompose-compat()`
    pub const DECOMPOSE_COMPAT: i32 = 58;
    /// `require()`
    pub const REQUIRE: i32 = 64;
    /// `equals()`
    pub const EQUALS_FUNCTION: i32 = 65;
    /// `size()`
    pub const SIZE: i32 = 66;
}

/// A subscription syntax tree node.
#[derive(Clone, Debug, PartialEq)]
pub enum SubAst {
    /// The empty tree (node code 0): matches nothing.
    Empty,
    /// A leaf: a name (conventionally code 1 with a string value) or a
    /// constant. Its base type on the wire is the value's type.
    Leaf {
        /// The node code (never 0, which means [`SubAst::Empty`]).
        code: NonZeroI32,
        /// The leaf's value.
        value: Value,
    },
    /// A composite node: an operator or function and its operands.
    Node {
        /// The node code (never 0, which means [`SubAst::Empty`]).
        code: NonZeroI32,
        /// The operands, in order.
        children: Vec<SubAst>,
    },
}

impl SubAst {
    /// Decodes one tree, rejecting trees deeper than
    /// [`MAX_SUB_AST_DEPTH`].
    pub fn decode(reader: &mut Reader<'_>) -> XdrResult<SubAst> {
        decode_node(reader, 1)
    }

    /// Appends the tree's encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            SubAst::Empty => xdr::put_i32(out, 0),
            SubAst::Leaf { code, value } => {
                xdr::put_i32(out, code.get());
                xdr::put_value(out, value.as_ref());
            }
            SubAst::Node { code, children } => {
                xdr::put_i32(out, code.get());
                xdr::put_i32(out, 0);
                xdr::put_count(out, children.len());
                for child in children {
                    child.encode(out);
                }
            }
        }
    }

    /// Size of the tree's encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            SubAst::Empty => 4,
            SubAst::Leaf { value, .. } => 4 + xdr::value_len(value.as_ref()),
            SubAst::Node { children, .. } => {
                12 + children.iter().map(SubAst::encoded_len).sum::<usize>()
            }
        }
    }

    /// Depth of the tree (a leaf or the empty tree is 1).
    pub fn depth(&self) -> usize {
        match self {
            SubAst::Empty | SubAst::Leaf { .. } => 1,
            SubAst::Node { children, .. } => {
                1 + children.iter().map(SubAst::depth).max().unwrap_or(0)
            }
        }
    }
}

fn decode_node(reader: &mut Reader<'_>, depth: usize) -> XdrResult<SubAst> {
    if depth > MAX_SUB_AST_DEPTH {
        return Err(DecodeErrorKind::NestingTooDeep {
            limit: MAX_SUB_AST_DEPTH,
        });
    }
    let Some(code) = NonZeroI32::new(reader.read_i32()?) else {
        return Ok(SubAst::Empty);
    };
    let base_type = reader.read_i32()?;
    if base_type == 0 {
        // Every child is at least one 4-byte node code.
        let count = reader.read_count(4)?;
        let mut children = Vec::with_capacity(count);
        for _ in 0..count {
            children.push(decode_node(reader, depth + 1)?);
        }
        return Ok(SubAst::Node { code, children });
    }
    let value_type =
        ValueType::from_code(base_type).ok_or(DecodeErrorKind::UnknownValueType(base_type))?;
    let value = reader.read_value_of_type(value_type)?.to_owned();
    Ok(SubAst::Leaf { code, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: i32) -> NonZeroI32 {
        NonZeroI32::new(c).unwrap()
    }

    fn round_trip(tree: &SubAst) -> XdrResult<SubAst> {
        let mut out = Vec::new();
        tree.encode(&mut out);
        assert_eq!(out.len(), tree.encoded_len());
        let mut r = Reader::new(&out);
        let back = SubAst::decode(&mut r)?;
        r.finish()?;
        Ok(back)
    }

    #[test]
    fn emulab_style_tree_round_trips() {
        // OBJNAME == "foo" && SCHEDULER == 0
        let tree = SubAst::Node {
            code: code(draft_code::AND),
            children: vec![
                SubAst::Node {
                    code: code(draft_code::EQUALS),
                    children: vec![
                        SubAst::Leaf {
                            code: code(draft_code::NAME),
                            value: "OBJNAME".into(),
                        },
                        SubAst::Leaf {
                            code: code(draft_code::CONST_STRING),
                            value: "foo".into(),
                        },
                    ],
                },
                SubAst::Node {
                    code: code(draft_code::EQUALS),
                    children: vec![
                        SubAst::Leaf {
                            code: code(draft_code::NAME),
                            value: "SCHEDULER".into(),
                        },
                        SubAst::Leaf {
                            code: code(draft_code::CONST_INT32),
                            value: Value::Int32(0),
                        },
                    ],
                },
            ],
        };
        assert_eq!(round_trip(&tree).unwrap(), tree);
        assert_eq!(tree.depth(), 3);
    }

    #[test]
    fn empty_tree_is_a_single_zero_word() {
        let mut out = Vec::new();
        SubAst::Empty.encode(&mut out);
        assert_eq!(out, [0, 0, 0, 0]);
        assert_eq!(round_trip(&SubAst::Empty).unwrap(), SubAst::Empty);
    }

    #[test]
    fn name_leaf_layout() {
        let mut out = Vec::new();
        SubAst::Leaf {
            code: code(1),
            value: "ab".into(),
        }
        .encode(&mut out);
        assert_eq!(out, [0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2, b'a', b'b', 0, 0]);
    }

    #[test]
    fn deep_trees_are_rejected_without_recursing_further() {
        let mut tree = SubAst::Empty;
        for _ in 0..MAX_SUB_AST_DEPTH {
            tree = SubAst::Node {
                code: code(draft_code::NOT),
                children: vec![tree],
            };
        }
        assert_eq!(
            round_trip(&tree),
            Err(DecodeErrorKind::NestingTooDeep {
                limit: MAX_SUB_AST_DEPTH
            })
        );

        // Exactly at the limit is fine.
        let mut tree = SubAst::Empty;
        for _ in 1..MAX_SUB_AST_DEPTH {
            tree = SubAst::Node {
                code: code(draft_code::NOT),
                children: vec![tree],
            };
        }
        assert_eq!(round_trip(&tree).unwrap(), tree);
    }

    #[test]
    fn bad_base_type_and_huge_child_count_are_rejected() {
        let words = |w: &[i32]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        assert_eq!(
            SubAst::decode(&mut Reader::new(&words(&[1, 9, 0]))),
            Err(DecodeErrorKind::UnknownValueType(9))
        );
        assert!(matches!(
            SubAst::decode(&mut Reader::new(&words(&[18, 0, 0x7FFF_FFFF, 0]))),
            Err(DecodeErrorKind::CountPastEnd { .. })
        ));
    }
}
