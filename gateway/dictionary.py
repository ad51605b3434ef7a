"""FIX data dictionaries in the QuickFIX XML format, and message validation against them.

A dictionary file has ``<header>``, ``<trailer>``, ``<messages>``, ``<components>`` and
``<fields>``. Fields carry a tag number, a type and optional enumerated values; messages,
components and repeating groups list fields by name with ``required='Y'`` or ``'N'``.
:func:`load_dictionary` expands components in place, so a message definition is a flat
set of tags plus its repeating groups.

:meth:`DataDictionary.validate` checks one message and returns the first problem as a
:class:`Violation`, whose reason is a SessionRejectReason (373) and whose tag goes into
RefTagID (371). The checks run in the order QuickFIX-based engines apply them, so the
same message draws the same Reject from either. First come header fields after body
fields, MsgType and required fields (by tag number). Then each field (by tag number) is
checked for a repeat, an empty value, its format, its enumerated values, an unknown tag,
a tag not defined for the message type and a repeating group count.

Not validated: field order inside a message body or a repeating group entry beyond the
first (delimiter) field, conditionally required fields, and data field lengths (the codec
frames data fields by their length field).
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from gateway.codec import FixMessage
from gateway.errors import ConfigError
from gateway.tags import SessionRejectReason

__all__ = [
    "DataDictionary",
    "FieldDef",
    "GroupDef",
    "MessageDef",
    "STANDARD_HEADER_TAGS",
    "ValidationOptions",
    "Violation",
    "load_dictionary",
    "venue_dictionary",
]

# Header fields of every FIX version from 4.0 to FIXT.1.1. A message is split into header
# and body by these as well as by the dictionary's own header. So a header field that the
# version does not define (OnBehalfOfLocationID (144) in FIX 4.0) is still read as a
# header field, and rejected as an invalid tag rather than as a body field out of place.
STANDARD_HEADER_TAGS = frozenset(
    {8, 9, 35, 34, 43, 49, 50, 52, 56, 57, 90, 91, 97, 115, 116, 122, 128, 129, 142, 143,
     144, 145, 212, 213, 347, 369, 627, 628, 629, 630, 1128, 1129, 1156}
)
TRAILER_TAGS = frozenset({89, 93, 10})
_FRAMING_TAGS = frozenset({8, 9, 35, 10})  # present in every framed message

# The first user-defined tag; ValidateUserDefinedFields=N skips tags from here on.
USER_DEFINED_TAG_MIN = 5000

VENUE_DICTIONARY = "FIXGW.xml"

# The FIX 4.0/4.1 Reject (3) has no SessionRejectReason (373); FIX 4.2 defines reasons 0-11.
_REASON_TEXT = {
    SessionRejectReason.INVALID_TAG_NUMBER: "Invalid tag number",
    SessionRejectReason.REQUIRED_TAG_MISSING: "Required tag missing",
    SessionRejectReason.TAG_NOT_DEFINED_FOR_MSG_TYPE: "Tag not defined for this message type",
    SessionRejectReason.UNDEFINED_TAG: "Undefined tag",
    SessionRejectReason.TAG_WITHOUT_VALUE: "Tag specified without a value",
    SessionRejectReason.VALUE_INCORRECT: "Value is incorrect (out of range) for this tag",
    SessionRejectReason.INCORRECT_DATA_FORMAT: "Incorrect data format for value",
    SessionRejectReason.INVALID_MSG_TYPE: "Invalid MsgType",
    SessionRejectReason.TAG_OUT_OF_ORDER: "Tag specified out of required order",
    SessionRejectReason.REPEATED_TAG: "Tag appears more than once",
    SessionRejectReason.GROUP_COUNT_MISMATCH: "Incorrect NumInGroup count for repeating group",
    SessionRejectReason.GROUP_FIELDS_OUT_OF_ORDER: "Repeating group fields out of order",
    SessionRejectReason.NON_DATA_VALUE_INCLUDES_SOH: (
        "Non-data value includes field delimiter (SOH character)"
    ),
}

_INT = re.compile(rb"-?[0-9]+")
_FLOAT = re.compile(rb"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")
_TIMESTAMP = re.compile(rb"[0-9]{8}-[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?")
_TIME_ONLY = re.compile(rb"[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?")
_DATE = re.compile(rb"[0-9]{8}")
_MONTH_YEAR = re.compile(rb"[0-9]{6}(?:[0-9]{2}|w[1-5])?")

# Value formats by dictionary type; types missing here (STRING, DATA, CURRENCY...) take
# any value.
_FORMATS: dict[str, re.Pattern[bytes]] = {
    **dict.fromkeys(("INT", "LENGTH", "NUMINGROUP", "SEQNUM", "TAGNUM", "DAYOFMONTH"), _INT),
    **dict.fromkeys(("FLOAT", "QTY", "PRICE", "PRICEOFFSET", "AMT", "PERCENTAGE"), _FLOAT),
    **dict.fromkeys(("UTCTIMESTAMP", "TIME"), _TIMESTAMP),
    **dict.fromkeys(("UTCTIMEONLY",), _TIME_ONLY),
    **dict.fromkeys(("UTCDATE", "UTCDATEONLY", "LOCALMKTDATE", "DATE"), _DATE),
    "MONTHYEAR": _MONTH_YEAR,
    "BOOLEAN": re.compile(rb"[YN]"),
    "CHAR": re.compile(rb".", re.DOTALL),
}
_MULTIPLE_VALUE_TYPES = frozenset({"MULTIPLEVALUESTRING", "MULTIPLECHARVALUE", "MULTIPLESTRINGVALUE"})


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One field: tag number, name, type and enumerated values (empty when any value goes)."""

    tag: int
    name: str
    type: str
    values: frozenset[bytes] = frozenset()


@dataclass(frozen=True, slots=True)
class GroupDef:
    """A repeating group: its NumInGroup tag, member tags and required members.

    ``delimiter`` is the first member; every entry starts with it.
    """

    count_tag: int
    delimiter: int
    tags: frozenset[int]
    required: tuple[int, ...]
    groups: dict[int, GroupDef]


@dataclass(frozen=True, slots=True)
class MessageDef:
    """A message type, header or trailer: its tags, required tags and repeating groups."""

    msg_type: str
    name: str
    is_admin: bool
    tags: frozenset[int]
    required: tuple[int, ...]  # in tag number order, the order they are checked in
    groups: dict[int, GroupDef]


@dataclass(frozen=True, slots=True)
class ValidationOptions:
    """The Validate* session settings, each on by default as in QuickFIX."""

    fields_have_values: bool = True
    user_defined_fields: bool = True
    fields_out_of_order: bool = True


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a message is rejected: SessionRejectReason (373) and the RefTagID (371), if any."""

    reason: int
    tag: int | None
    text: str


@dataclass(frozen=True, slots=True)
class _Node:
    """One field of a parsed body: tag, value and, for a NumInGroup field, its entries."""

    tag: int
    value: bytes
    entries: list[list[_Node]] | None = None


@dataclass
class DataDictionary:
    """A parsed dictionary; ``begin_string`` is "FIX.4.4", "FIXT.1.1" or "FIX.5.0SP2"."""

    begin_string: str
    fields: dict[int, FieldDef]
    header: MessageDef
    trailer: MessageDef
    messages: dict[str, MessageDef]
    source: str = ""
    msg_type_values: frozenset[str] = field(default_factory=frozenset)

    @property
    def _loose_char(self) -> bool:
        # FIX 4.0 and 4.1 dictionaries type string fields such as SenderCompID (49) as
        # CHAR, so a CHAR value there may be longer than one character.
        return self.begin_string in ("FIX.4.0", "FIX.4.1")

    def is_header_tag(self, tag: int) -> bool:
        """Return whether ``tag`` belongs in the standard header."""
        return tag in self.header.tags or tag in STANDARD_HEADER_TAGS

    def is_known_msg_type(self, msg_type: str) -> bool:
        """Return whether ``msg_type`` is a FIX MsgType (35), defined here as a message or not."""
        return msg_type in self.messages or msg_type in self.msg_type_values

    def validate(
        self,
        message: FixMessage,
        options: ValidationOptions = ValidationOptions(),
        app: DataDictionary | None = None,
    ) -> Violation | None:
        """Check ``message``; return the first problem, or None when it is valid.

        ``self`` checks the header and trailer; ``app`` (default ``self``) checks the body,
        as a FIXT.1.1 transport dictionary and a FIX 5.0 application dictionary divide
        the work. A MsgType (35) that ``app`` lists as a value but does not define as a
        message passes with its header checked only: the application then rejects it.
        """
        body_dictionary = app if app is not None else self
        fields = message.fields[3:-1]  # without 8, 9, 35 and 10, which framing checked
        header, body, trailer, out_of_order = self._split(fields)
        if out_of_order is not None and options.fields_out_of_order:
            return _violation(SessionRejectReason.TAG_OUT_OF_ORDER, out_of_order)

        msg_type = message.msg_type
        definition = body_dictionary.messages.get(msg_type)
        if definition is None and not body_dictionary.is_known_msg_type(msg_type):
            return _violation(SessionRejectReason.INVALID_MSG_TYPE, None)

        present = {tag for tag, _ in header} | {tag for tag, _ in trailer} | _FRAMING_TAGS
        violation = _check_required(self.header, present) or _check_required(self.trailer, present)
        if violation is not None:
            return violation
        nodes: list[_Node] = []
        if definition is not None:
            nodes, violation = _parse_body(body, definition.groups)
            if violation is not None:
                return violation
            violation = _check_required(definition, {node.tag for node in nodes})
            violation = violation or _check_group_required(nodes, definition.groups)
            if violation is not None:
                return violation

        for part, checker, scope in (
            (header, self, self.header),
            (trailer, self, self.trailer),
        ):
            violation = checker._check_fields([_Node(t, v) for t, v in part], scope, options, True)
            if violation is not None:
                return violation
        if definition is None:
            return None
        return body_dictionary._check_fields(nodes, definition, options, False)

    def _split(
        self, fields: list[tuple[int, bytes]]
    ) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]], list[tuple[int, bytes]], int | None]:
        """Split fields into header, body and trailer.

        Also return the first header tag that follows a body field, or the first body
        tag that follows a trailer field, or None.
        """
        header: list[tuple[int, bytes]] = []
        body: list[tuple[int, bytes]] = []
        trailer: list[tuple[int, bytes]] = []
        out_of_order: int | None = None
        for tag, value in fields:
            if self.is_header_tag(tag):
                header.append((tag, value))
                if (body or trailer) and out_of_order is None:
                    out_of_order = tag
            elif tag in self.trailer.tags or tag in TRAILER_TAGS:
                trailer.append((tag, value))
            else:
                body.append((tag, value))
                if trailer and out_of_order is None:
                    out_of_order = tag
        return header, body, trailer, out_of_order

    def _check_fields(
        self, nodes: list[_Node], scope: MessageDef | GroupDef, options: ValidationOptions,
        is_header: bool,
    ) -> Violation | None:
        """Check each field for a repeat, a value, its format and values, and its place."""
        previous: int | None = None
        for node in sorted(nodes, key=lambda n: n.tag):
            if node.tag == previous:
                return _violation(SessionRejectReason.REPEATED_TAG, node.tag)
            previous = node.tag
            violation = self._check_field(node, scope, options, is_header)
            if violation is not None:
                return violation
            for entry in node.entries or ():
                group = scope.groups[node.tag]
                violation = self._check_fields(entry, group, options, False)
                if violation is not None:
                    return violation
        return None

    def _check_field(
        self, node: _Node, scope: MessageDef | GroupDef, options: ValidationOptions,
        is_header: bool,
    ) -> Violation | None:
        tag, value = node.tag, node.value
        if not value:
            if options.fields_have_values:
                return _violation(SessionRejectReason.TAG_WITHOUT_VALUE, tag)
        else:
            definition = self.fields.get(tag)
            if definition is not None:
                violation = _check_value(definition, value, self._loose_char)
                if violation is not None:
                    return violation
        if tag <= 0:
            return _violation(SessionRejectReason.INVALID_TAG_NUMBER, tag)
        if tag >= USER_DEFINED_TAG_MIN and not options.user_defined_fields:
            return None
        if tag not in self.fields:
            return _violation(SessionRejectReason.INVALID_TAG_NUMBER, tag)
        if not is_header and tag not in scope.tags:
            return _violation(SessionRejectReason.TAG_NOT_DEFINED_FOR_MSG_TYPE, tag)
        return None


def reason_text(reason: int) -> str:
    """Return the usual Text (58) for a SessionRejectReason (373)."""
    return _REASON_TEXT.get(reason, f"SessionRejectReason {reason}")


def _violation(reason: int, tag: int | None) -> Violation:
    return Violation(reason, tag, reason_text(reason))


def _check_value(definition: FieldDef, value: bytes, loose_char: bool) -> Violation | None:
    pattern = None if loose_char and definition.type == "CHAR" else _FORMATS.get(definition.type)
    if pattern is not None and pattern.fullmatch(value) is None:
        return _violation(SessionRejectReason.INCORRECT_DATA_FORMAT, definition.tag)
    if definition.values:
        parts = value.split(b" ") if definition.type in _MULTIPLE_VALUE_TYPES else [value]
        if any(part not in definition.values for part in parts):
            return _violation(SessionRejectReason.VALUE_INCORRECT, definition.tag)
    return None


def _check_required(scope: MessageDef | GroupDef, present: set[int]) -> Violation | None:
    for tag in scope.required:
        if tag not in present:
            return _violation(SessionRejectReason.REQUIRED_TAG_MISSING, tag)
    return None


def _check_group_required(nodes: list[_Node], groups: dict[int, GroupDef]) -> Violation | None:
    for node in nodes:
        for entry in node.entries or ():
            group = groups[node.tag]
            violation = _check_required(group, {n.tag for n in entry})
            violation = violation or _check_group_required(entry, group.groups)
            if violation is not None:
                return violation
    return None


def _parse_body(
    fields: list[tuple[int, bytes]], groups: dict[int, GroupDef]
) -> tuple[list[_Node], Violation | None]:
    """Nest repeating group entries under their NumInGroup fields."""
    nodes: list[_Node] = []
    position = 0
    while position < len(fields):
        tag, value = fields[position]
        position += 1
        group = groups.get(tag)
        if group is None:
            nodes.append(_Node(tag, value))
            continue
        if _INT.fullmatch(value) is None:
            return nodes, _violation(SessionRejectReason.INCORRECT_DATA_FORMAT, tag)
        if position < len(fields) and int(value) > 0:
            first = fields[position][0]
            if first != group.delimiter and first in group.tags:
                # An entry must start with the group's first field, because that field
                # is what separates one entry from the next.
                return nodes, _violation(SessionRejectReason.GROUP_FIELDS_OUT_OF_ORDER, first)
        entries, position = _parse_entries(fields, position, group)
        nodes.append(_Node(tag, value, entries))
        if len(entries) != int(value):
            return nodes, _violation(SessionRejectReason.GROUP_COUNT_MISMATCH, tag)
    return nodes, None


def _parse_entries(
    fields: list[tuple[int, bytes]], position: int, group: GroupDef
) -> tuple[list[list[_Node]], int]:
    """Read group entries from ``position``; return them and the index after the group."""
    entries: list[list[_Node]] = []
    while position < len(fields) and fields[position][0] == group.delimiter:
        entry_fields: list[tuple[int, bytes]] = [fields[position]]
        position += 1
        seen = {group.delimiter}
        # An entry ends at its group's delimiter (the next entry), at a tag outside the
        # group, or at a tag it already has.
        while position < len(fields):
            tag = fields[position][0]
            if tag == group.delimiter or tag not in group.tags or tag in seen:
                break
            entry_fields.append(fields[position])
            seen.add(tag)
            position += 1
            nested = group.groups.get(tag)
            if nested is not None:
                end = _end_of_entries(fields, position, nested)
                entry_fields.extend(fields[position:end])
                position = end
        nodes, _ = _parse_body(entry_fields, group.groups)
        entries.append(nodes)
    return entries, position


def _end_of_entries(fields: list[tuple[int, bytes]], position: int, group: GroupDef) -> int:
    _, end = _parse_entries(fields, position, group)
    return end


# Loading.


@functools.lru_cache(maxsize=32)
def load_dictionary(path: str | Path) -> DataDictionary:
    """Read a QuickFIX-format XML dictionary; the result is cached by path.

    Raises ConfigError naming the file when it cannot be read or parsed, or when a
    message or component names a field or component the file does not define.
    """
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        raise ConfigError(f"data dictionary {str(path)!r} cannot be read: {exc}") from exc
    try:
        return _Loader(root, str(path)).load()
    except KeyError as exc:
        raise ConfigError(
            f"data dictionary {str(path)!r} refers to {exc.args[0]!r}, which it does not "
            "define under <fields> or <components>"
        ) from None


def venue_dictionary() -> DataDictionary:
    """Return the dictionary shipped with the gateway: the messages the venue accepts."""
    resource = resources.files("gateway") / "spec" / VENUE_DICTIONARY
    with resources.as_file(resource) as path:
        return load_dictionary(str(path))


class _Loader:
    """Builds a DataDictionary from the XML tree, expanding components in place."""

    def __init__(self, root: ElementTree.Element, source: str) -> None:
        self.root = root
        self.source = source
        self.tags: dict[str, int] = {}
        self.components = {c.get("name", ""): c for c in root.iterfind("components/component")}

    def load(self) -> DataDictionary:
        fields = self._load_fields()
        header = self._section("header", "", "header", True)
        trailer = self._section("trailer", "", "trailer", True)
        messages: dict[str, MessageDef] = {}
        for element in self.root.iterfind("messages/message"):
            msg_type = element.get("msgtype", "")
            tags, required, groups = self._collect(element, True)
            messages[msg_type] = MessageDef(
                msg_type, element.get("name", ""), element.get("msgcat") == "admin",
                frozenset(tags), tuple(sorted(set(required))), groups,
            )
        msg_type_field = fields.get(35)
        return DataDictionary(
            begin_string=self._begin_string(),
            fields=fields,
            header=header,
            trailer=trailer,
            messages=messages,
            source=self.source,
            msg_type_values=frozenset(
                v.decode("latin-1") for v in (msg_type_field.values if msg_type_field else ())
            ),
        )

    def _begin_string(self) -> str:
        kind = self.root.get("type", "FIX")
        major, minor = self.root.get("major", "4"), self.root.get("minor", "4")
        service_pack = self.root.get("servicepack", "0")
        suffix = f"SP{service_pack}" if service_pack not in ("", "0") else ""
        return f"{kind}.{major}.{minor}{suffix}"

    def _load_fields(self) -> dict[int, FieldDef]:
        fields: dict[int, FieldDef] = {}
        for element in self.root.iterfind("fields/field"):
            tag = int(element.get("number", "0"))
            name = element.get("name", "")
            values = frozenset(
                v.get("enum", "").encode("latin-1") for v in element.iterfind("value")
            )
            fields[tag] = FieldDef(tag, name, element.get("type", "STRING").upper(), values)
            self.tags[name] = tag
        return fields

    def _section(self, path: str, msg_type: str, name: str, is_admin: bool) -> MessageDef:
        element = self.root.find(path)
        if element is None:
            return MessageDef(msg_type, name, is_admin, frozenset(), (), {})
        tags, required, groups = self._collect(element, True)
        return MessageDef(
            msg_type, name, is_admin, frozenset(tags), tuple(sorted(set(required))), groups
        )

    def _collect(
        self, element: ElementTree.Element, is_required_scope: bool
    ) -> tuple[list[int], list[int], dict[int, GroupDef]]:
        """Return the tags in order, the required tags and the groups under ``element``."""
        tags: list[int] = []
        required: list[int] = []
        groups: dict[int, GroupDef] = {}
        for child in element:
            is_required = is_required_scope and child.get("required") == "Y"
            if child.tag == "field":
                tag = self.tags[child.get("name", "")]
                tags.append(tag)
                if is_required:
                    required.append(tag)
            elif child.tag == "component":
                component = self.components[child.get("name", "")]
                sub_tags, sub_required, sub_groups = self._collect(component, is_required)
                tags += sub_tags
                required += sub_required
                groups.update(sub_groups)
            elif child.tag == "group":
                group = self._group(child)
                tags.append(group.count_tag)
                groups[group.count_tag] = group
                if is_required:
                    required.append(group.count_tag)
        return tags, required, groups

    def _group(self, element: ElementTree.Element) -> GroupDef:
        count_tag = self.tags[element.get("name", "")]
        tags, required, groups = self._collect(element, True)
        if not tags:
            raise ConfigError(f"{self.source}: repeating group {element.get('name')!r} is empty")
        return GroupDef(count_tag, tags[0], frozenset(tags), tuple(sorted(set(required))), groups)

