//! `schema/ogp-v1.xml` against the Rust layouts and codes.
//!
//! The SBE schema is what other teams generate their codecs from, and
//! `wire::LAYOUTS` is what the gateway actually puts on the wire; they are
//! written by hand in two places, so this test is what keeps them one
//! contract. For every template it checks the name, id, block length, every
//! field's offset (root-block offset = frame offset − 12), primitive type and
//! length, and the tag; then that the schema says nothing the Rust lacks;
//! then that every enum and set has exactly the Rust code values.
//!
//! Each check collects every disagreement before failing, and each line
//! names the message and field, so one run shows everything that is off.

use std::collections::{BTreeMap, BTreeSet};

use ordergate::session::LOGON_FLAG_CANCEL_ON_DISCONNECT;
use ordergate::wire::codes::{
    CancelReason, Environment, LogonRejectReason, OrdType, RejectReason, Scopes, Side,
    TerminateReason, Tif,
};
use ordergate::wire::{
    HEADER_SIZE, LAYOUTS, Layout, MAC_SIZE, SCHEMA_ID, SCHEMA_VERSION, WireField,
};
use roxmltree::{Document, Node};

const SCHEMA_PATH: &str = "schema/ogp-v1.xml";
const SCHEMA_XML: &str = include_str!("../schema/ogp-v1.xml");
const SBE_NAMESPACE: &str = "http://fixprotocol.io/2016/sbe";
/// Bytes of the Simple Open Framing Header, which precedes the SBE header
/// and which SBE XML does not model.
const SOFH_SIZE: usize = 4;

// ------------------------------------------------------------ the schema

/// A type declared in `<types>`, or a primitive named directly.
#[derive(Debug)]
enum TypeDef {
    /// `<type primitiveType=".." length="..">` (length 1 when absent).
    Simple { primitive: String, length: usize },
    /// `<enum encodingType="..">` with its `(name, value)` pairs.
    Enum {
        encoding: String,
        values: Vec<(String, u64)>,
    },
    /// `<set encodingType="..">` with its `(name, bit)` pairs.
    Set {
        encoding: String,
        choices: Vec<(String, u32)>,
    },
    /// `<composite>` with its member `(name, type)` pairs.
    Composite { members: Vec<(String, String)> },
}

#[derive(Debug)]
struct Field {
    name: String,
    id: u32,
    type_name: String,
    offset: usize,
}

#[derive(Debug)]
struct Message {
    name: String,
    id: u16,
    block_length: usize,
    fields: Vec<Field>,
}

#[derive(Debug)]
struct Schema {
    package: String,
    id: u16,
    version: u16,
    byte_order: String,
    header_type: String,
    types: BTreeMap<String, TypeDef>,
    messages: Vec<Message>,
}

const PRIMITIVES: &[(&str, usize)] = &[
    ("char", 1),
    ("int8", 1),
    ("uint8", 1),
    ("int16", 2),
    ("uint16", 2),
    ("int32", 4),
    ("uint32", 4),
    ("float", 4),
    ("int64", 8),
    ("uint64", 8),
    ("double", 8),
];

fn primitive_size(name: &str) -> Option<usize> {
    PRIMITIVES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

fn attr<'a>(node: Node<'a, '_>, name: &str) -> &'a str {
    node.attribute(name).unwrap_or_else(|| {
        panic!(
            "{SCHEMA_PATH}: <{} name={:?}> has no {name} attribute",
            node.tag_name().name(),
            node.attribute("name").unwrap_or("?")
        )
    })
}

fn attr_num<T: std::str::FromStr>(node: Node<'_, '_>, name: &str) -> T {
    let text = attr(node, name);
    text.parse().unwrap_or_else(|_| {
        panic!(
            "{SCHEMA_PATH}: <{} name={:?}> {name}={text:?} is not a number",
            node.tag_name().name(),
            node.attribute("name").unwrap_or("?")
        )
    })
}

fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(|n| n.is_element())
}

fn text_num<T: std::str::FromStr>(node: Node<'_, '_>, owner: &str) -> T {
    let text = node.text().unwrap_or("").trim();
    text.parse().unwrap_or_else(|_| {
        panic!(
            "{SCHEMA_PATH}: {owner}.{}: value {text:?} is not a number",
            attr(node, "name")
        )
    })
}

fn parse_type(node: Node<'_, '_>) -> TypeDef {
    let name = attr(node, "name");
    match node.tag_name().name() {
        "type" => TypeDef::Simple {
            primitive: attr(node, "primitiveType").to_string(),
            length: node
                .attribute("length")
                .map_or(1, |_| attr_num(node, "length")),
        },
        "enum" => TypeDef::Enum {
            encoding: attr(node, "encodingType").to_string(),
            values: elements(node)
                .map(|v| {
                    assert_eq!(v.tag_name().name(), "validValue", "enum {name}");
                    (attr(v, "name").to_string(), text_num(v, name))
                })
                .collect(),
        },
        "set" => TypeDef::Set {
            encoding: attr(node, "encodingType").to_string(),
            choices: elements(node)
                .map(|c| {
                    assert_eq!(c.tag_name().name(), "choice", "set {name}");
                    (attr(c, "name").to_string(), text_num(c, name))
                })
                .collect(),
        },
        "composite" => TypeDef::Composite {
            members: elements(node)
                .map(|m| {
                    assert_eq!(
                        m.tag_name().name(),
                        "type",
                        "composite {name}: only simple members are expected"
                    );
                    (
                        attr(m, "name").to_string(),
                        attr(m, "primitiveType").to_string(),
                    )
                })
                .collect(),
        },
        other => panic!("{SCHEMA_PATH}: unexpected <{other}> in <types>"),
    }
}

fn parse_message(node: Node<'_, '_>) -> Message {
    let name = attr(node, "name").to_string();
    let fields = elements(node)
        .map(|f| {
            assert_eq!(
                f.tag_name().name(),
                "field",
                "{name}: OGP has no groups or variable-length data, only <field>"
            );
            Field {
                name: attr(f, "name").to_string(),
                id: attr_num(f, "id"),
                type_name: attr(f, "type").to_string(),
                offset: attr_num(f, "offset"),
            }
        })
        .collect();
    Message {
        id: attr_num(node, "id"),
        block_length: attr_num(node, "blockLength"),
        name,
        fields,
    }
}

fn schema() -> Schema {
    let doc = Document::parse(SCHEMA_XML)
        .unwrap_or_else(|e| panic!("{SCHEMA_PATH} is not well-formed XML: {e}"));
    let root = doc.root_element();
    assert_eq!(
        (root.tag_name().namespace(), root.tag_name().name()),
        (Some(SBE_NAMESPACE), "messageSchema"),
        "{SCHEMA_PATH}: the root must be sbe:messageSchema in the SBE 1.0 namespace"
    );
    let mut types = BTreeMap::new();
    let mut messages = Vec::new();
    for child in elements(root) {
        match (child.tag_name().namespace(), child.tag_name().name()) {
            (None, "types") => {
                for t in elements(child) {
                    let name = attr(t, "name").to_string();
                    assert!(
                        primitive_size(&name).is_none(),
                        "{SCHEMA_PATH}: type {name} shadows a primitive"
                    );
                    let previous = types.insert(name.clone(), parse_type(t));
                    assert!(
                        previous.is_none(),
                        "{SCHEMA_PATH}: type {name} is declared twice"
                    );
                }
            }
            (Some(SBE_NAMESPACE), "message") => messages.push(parse_message(child)),
            (ns, name) => panic!("{SCHEMA_PATH}: unexpected element {name} (namespace {ns:?})"),
        }
    }
    Schema {
        package: attr(root, "package").to_string(),
        id: attr_num(root, "id"),
        version: attr_num(root, "version"),
        byte_order: attr(root, "byteOrder").to_string(),
        header_type: root
            .attribute("headerType")
            .unwrap_or("messageHeader")
            .to_string(),
        types,
        messages,
    }
}

impl Schema {
    /// The primitive and element count a field of type `name` puts on the
    /// wire: primitives as themselves, `<type>` by primitiveType and length,
    /// enums and sets by their encodingType (itself a primitive or a simple
    /// type).
    fn resolve(&self, name: &str) -> Result<(String, usize), String> {
        if primitive_size(name).is_some() {
            return Ok((name.to_string(), 1));
        }
        match self.types.get(name) {
            None => Err(format!("type {name:?} is not declared")),
            Some(TypeDef::Simple { primitive, length }) => {
                if primitive_size(primitive).is_none() {
                    return Err(format!(
                        "type {name} has unknown primitiveType {primitive:?}"
                    ));
                }
                Ok((primitive.clone(), *length))
            }
            Some(TypeDef::Enum { encoding, .. } | TypeDef::Set { encoding, .. }) => {
                let (primitive, length) = self.resolve(encoding)?;
                if length != 1 {
                    return Err(format!("{name}'s encodingType {encoding} is an array"));
                }
                Ok((primitive, 1))
            }
            Some(TypeDef::Composite { .. }) => Err(format!(
                "{name} is a composite; OGP fields are scalars, arrays, enums or sets"
            )),
        }
    }

    fn message(&self, id: u16) -> Option<&Message> {
        self.messages.iter().find(|m| m.id == id)
    }
}

fn fail_if_any(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{SCHEMA_PATH} disagrees with {what} in {} place(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

// ------------------------------------------------------------- the checks

#[test]
fn schema_identity_and_header_match_the_wire_constants() {
    let s = schema();
    let mut problems = Vec::new();
    if s.id != SCHEMA_ID {
        problems.push(format!(
            "messageSchema id {} but wire::SCHEMA_ID is {SCHEMA_ID}",
            s.id
        ));
    }
    if s.version != SCHEMA_VERSION {
        problems.push(format!(
            "messageSchema version {} but wire::SCHEMA_VERSION is {SCHEMA_VERSION}",
            s.version
        ));
    }
    if s.byte_order != "littleEndian" {
        problems.push(format!("byteOrder {:?}; OGP is littleEndian", s.byte_order));
    }
    if s.package != "ordergate.ogp" {
        problems.push(format!(
            "package {:?}, expected \"ordergate.ogp\"",
            s.package
        ));
    }
    // The SBE header is frame bytes 4..12 (after the SOFH), in this order.
    let expected: &[(&str, &str)] = &[
        ("blockLength", "uint16"),
        ("templateId", "uint16"),
        ("schemaId", "uint16"),
        ("version", "uint16"),
    ];
    match s.types.get(&s.header_type) {
        Some(TypeDef::Composite { members }) => {
            let got: Vec<(&str, &str)> = members
                .iter()
                .map(|(n, t)| (n.as_str(), t.as_str()))
                .collect();
            if got != expected {
                problems.push(format!(
                    "composite {}: members {got:?}, expected {expected:?}",
                    s.header_type
                ));
            }
            let header_bytes: usize = members
                .iter()
                .map(|(_, t)| primitive_size(t).unwrap_or(0))
                .sum();
            if SOFH_SIZE + header_bytes != HEADER_SIZE {
                problems.push(format!(
                    "SOFH {SOFH_SIZE} + {} header bytes != wire::HEADER_SIZE {HEADER_SIZE}",
                    s.header_type
                ));
            }
        }
        other => problems.push(format!(
            "headerType {:?} is not a composite: {other:?}",
            s.header_type
        )),
    }
    fail_if_any("the wire constants", problems);
}

/// Checks one Rust layout against the schema, pushing every disagreement.
fn check_layout(s: &Schema, layout: &Layout, problems: &mut Vec<String>) {
    let name = layout.name;
    let id = layout.template_id;
    let Some(m) = s.message(id) else {
        problems.push(format!(
            "{name} (template {id}): no sbe:message with id {id}"
        ));
        return;
    };
    if m.name != name {
        problems.push(format!(
            "template {id}: named {:?} in the schema, {name:?} in Rust",
            m.name
        ));
    }
    let block_length = layout.size - HEADER_SIZE;
    if m.block_length != block_length {
        problems.push(format!(
            "{name}: blockLength {} but Rust size {} − {HEADER_SIZE} = {block_length}",
            m.block_length, layout.size
        ));
    }
    let expected_mac = layout.mac_offset.map(|frame_offset| {
        (
            "mac",
            frame_offset,
            MAC_SIZE,
            <[u8; MAC_SIZE] as WireField>::SBE_TYPE,
            <[u8; MAC_SIZE] as WireField>::SBE_LENGTH,
        )
    });
    let expected = layout
        .fields
        .iter()
        .map(|f| (f.name, f.offset, f.len, f.sbe_type, f.sbe_length))
        .chain(expected_mac);
    for (field, frame_offset, len, sbe_type, sbe_length) in expected {
        let Some(x) = m.fields.iter().find(|x| x.name == field) else {
            problems.push(format!("{name}.{field}: missing from the schema"));
            continue;
        };
        let offset = frame_offset - HEADER_SIZE;
        if x.offset != offset {
            problems.push(format!(
                "{name}.{field}: schema offset {} but Rust frame offset {frame_offset} − {HEADER_SIZE} = {offset}",
                x.offset
            ));
        }
        match s.resolve(&x.type_name) {
            Err(e) => problems.push(format!("{name}.{field}: {e}")),
            Ok((primitive, length)) => {
                if (primitive.as_str(), length) != (sbe_type, sbe_length) {
                    problems.push(format!(
                        "{name}.{field}: schema type {} is {primitive}×{length}, Rust is {sbe_type}×{sbe_length}",
                        x.type_name
                    ));
                }
                let bytes = primitive_size(&primitive).unwrap_or(0) * length;
                if bytes != len {
                    problems.push(format!(
                        "{name}.{field}: schema type {} is {bytes} bytes, Rust field is {len}",
                        x.type_name
                    ));
                }
            }
        }
    }
    if layout.mac_offset.is_none() && m.fields.iter().any(|x| x.name == "mac") {
        problems.push(format!(
            "{name}: untagged in Rust but has a mac field in the schema"
        ));
    }
}

#[test]
fn every_rust_layout_is_in_the_schema_byte_for_byte() {
    let s = schema();
    let mut problems = Vec::new();
    for layout in LAYOUTS {
        check_layout(&s, layout, &mut problems);
    }
    fail_if_any("wire::LAYOUTS", problems);
}

#[test]
fn the_schema_declares_no_message_or_field_that_rust_lacks() {
    let s = schema();
    let mut problems = Vec::new();
    for m in &s.messages {
        let Some(layout) = LAYOUTS.iter().find(|l| l.template_id == m.id) else {
            problems.push(format!(
                "sbe:message {} (id {}): no Rust layout has template {}",
                m.name, m.id, m.id
            ));
            continue;
        };
        for x in &m.fields {
            let in_rust = layout.fields.iter().any(|f| f.name == x.name)
                || (x.name == "mac" && layout.mac_offset.is_some());
            if !in_rust {
                problems.push(format!(
                    "{}.{}: in the schema, not in the Rust layout",
                    m.name, x.name
                ));
            }
        }
    }
    fail_if_any("wire::LAYOUTS", problems);
}

#[test]
fn the_schema_is_well_formed_sbe() {
    let s = schema();
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    let mut names = BTreeSet::new();
    for m in &s.messages {
        if !ids.insert(m.id) {
            problems.push(format!("message id {} is used twice", m.id));
        }
        if !names.insert(m.name.as_str()) {
            problems.push(format!("message name {} is used twice", m.name));
        }
        let mut field_ids = BTreeSet::new();
        let mut end = 0;
        for x in &m.fields {
            if !field_ids.insert(x.id) {
                problems.push(format!(
                    "{}.{}: field id {} is used twice",
                    m.name, x.name, x.id
                ));
            }
            if x.offset < end {
                problems.push(format!(
                    "{}.{}: offset {} overlaps the previous field, which ends at {end}",
                    m.name, x.name, x.offset
                ));
            }
            match s.resolve(&x.type_name) {
                Ok((primitive, length)) => {
                    end = x.offset + primitive_size(&primitive).unwrap_or(0) * length;
                }
                Err(e) => problems.push(format!("{}.{}: {e}", m.name, x.name)),
            }
        }
        if end > m.block_length {
            problems.push(format!(
                "{}: fields end at {end}, beyond blockLength {}",
                m.name, m.block_length
            ));
        }
    }
    fail_if_any("the SBE rules", problems);
}

/// Which code each coded field carries. Rust declares these fields as raw
/// integers, so the layout check above only sees `uint16` and could not tell
/// a Terminate.reason typed `CancelReason` from the right one; this table
/// (from `crates/ordergate-core/src/session/mod.rs`, which writes each code into its field) can.
const CODE_FIELDS: &[(&str, &str, &str)] = &[
    ("Logon", "environment", "Environment"),
    ("Logon", "flags", "LogonFlags"),
    ("LogonAck", "scopes", "Scopes"),
    ("LogonAck", "environment", "Environment"),
    ("LogonReject", "reason", "LogonRejectReason"),
    ("Logout", "reason", "TerminateReason"),
    ("Terminate", "reason", "TerminateReason"),
    ("NewOrder", "side", "Side"),
    ("NewOrder", "ord_type", "OrdType"),
    ("NewOrder", "tif", "Tif"),
    ("OrderRejected", "reason", "RejectReason"),
    ("OrderCanceled", "reason", "CancelReason"),
];

#[test]
fn coded_fields_use_their_code_type() {
    let s = schema();
    let mut problems = Vec::new();
    for (message, field, code) in CODE_FIELDS {
        let x = s
            .messages
            .iter()
            .filter(|m| m.name == *message)
            .flat_map(|m| &m.fields)
            .find(|x| x.name == *field);
        match x {
            Some(x) if x.type_name == *code => {}
            Some(x) => problems.push(format!(
                "{message}.{field}: type {}, expected {code}",
                x.type_name
            )),
            None => problems.push(format!("{message}.{field}: missing from the schema")),
        }
    }
    fail_if_any("the code each field carries", problems);
}

/// A Rust code enum as the schema should show it.
struct RustEnum {
    /// The schema's enum name (the Rust type's name).
    name: &'static str,
    /// The SBE primitive of its `wire()` value.
    encoding: &'static str,
    /// `(name(), wire())` of every value in `ALL`, in order.
    values: Vec<(&'static str, u64)>,
}

/// A Rust bit set as the schema should show it.
struct RustSet {
    name: &'static str,
    /// `(choice name, bit mask)` in bit order.
    choices: Vec<(&'static str, u8)>,
    /// Every bit the Rust side defines.
    defined: u8,
}

fn rust_enums() -> Vec<RustEnum> {
    fn sbe_type_of<T: WireField>(_: T) -> &'static str {
        T::SBE_TYPE
    }
    macro_rules! rust_enum {
        ($t:ident) => {
            RustEnum {
                name: stringify!($t),
                encoding: sbe_type_of($t::ALL[0].wire()),
                values: $t::ALL
                    .iter()
                    .map(|c| (c.name(), u64::from(c.wire())))
                    .collect(),
            }
        };
    }
    vec![
        rust_enum!(Environment),
        rust_enum!(Side),
        rust_enum!(OrdType),
        rust_enum!(Tif),
        rust_enum!(LogonRejectReason),
        rust_enum!(RejectReason),
        rust_enum!(CancelReason),
        rust_enum!(TerminateReason),
    ]
}

fn rust_sets() -> Vec<RustSet> {
    vec![
        RustSet {
            name: "Scopes",
            choices: vec![
                ("TRADE", Scopes::TRADE.0),
                ("CANCEL", Scopes::CANCEL.0),
                ("READ", Scopes::READ.0),
            ],
            defined: Scopes::DEFINED.0,
        },
        RustSet {
            name: "LogonFlags",
            choices: vec![("cancel_on_disconnect", LOGON_FLAG_CANCEL_ON_DISCONNECT)],
            defined: LOGON_FLAG_CANCEL_ON_DISCONNECT,
        },
    ]
}

#[test]
fn every_enum_and_set_has_exactly_the_rust_code_values() {
    let s = schema();
    let mut problems = Vec::new();
    let enums = rust_enums();
    let sets = rust_sets();
    for RustEnum {
        name,
        encoding,
        values: rust_values,
    } in &enums
    {
        match s.types.get(*name) {
            Some(TypeDef::Enum {
                encoding: e,
                values,
            }) => {
                match s.resolve(e) {
                    Ok((p, 1)) if p == *encoding => {}
                    other => problems.push(format!(
                        "enum {name}: encodingType {e} resolves to {other:?}, Rust encodes {encoding}"
                    )),
                }
                let got: Vec<(&str, u64)> = values.iter().map(|(n, v)| (n.as_str(), *v)).collect();
                if got != *rust_values {
                    problems.push(format!(
                        "enum {name}: schema values {got:?}, Rust {name}::ALL {rust_values:?}"
                    ));
                }
            }
            other => problems.push(format!("enum {name}: schema has {other:?}")),
        }
    }
    for RustSet {
        name,
        choices,
        defined,
    } in &sets
    {
        match s.types.get(*name) {
            Some(TypeDef::Set {
                encoding,
                choices: got,
            }) => {
                if !matches!(s.resolve(encoding), Ok((ref p, 1)) if p == "uint8") {
                    problems.push(format!(
                        "set {name}: encodingType {encoding}, Rust encodes uint8"
                    ));
                }
                let got: Vec<(&str, u8)> = got
                    .iter()
                    .map(|(n, bit)| (n.as_str(), 1u8.checked_shl(*bit).unwrap_or(0)))
                    .collect();
                if got != *choices {
                    problems.push(format!(
                        "set {name}: schema choices as masks {got:?}, Rust {choices:?}"
                    ));
                }
                let union = got.iter().fold(0u8, |acc, (_, m)| acc | m);
                if union != *defined {
                    problems.push(format!(
                        "set {name}: choices cover {union:#010b}, Rust defines {defined:#010b}"
                    ));
                }
            }
            other => problems.push(format!("set {name}: schema has {other:?}")),
        }
    }
    // Nothing coded in the schema that Rust does not know.
    for (name, t) in &s.types {
        let known = match t {
            TypeDef::Enum { .. } => enums.iter().any(|e| e.name == name),
            TypeDef::Set { .. } => sets.iter().any(|e| e.name == name),
            _ => true,
        };
        if !known {
            problems.push(format!(
                "{name}: a code type in the schema with no Rust counterpart"
            ));
        }
    }
    fail_if_any("wire::codes", problems);
}
