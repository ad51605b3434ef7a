"""Data dictionaries: loading QuickFIX-format XML and validating messages against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.codec import decode_message, encode
from gateway.dictionary import ValidationOptions, load_dictionary, venue_dictionary
from gateway.errors import ConfigError
from gateway.tags import SessionRejectReason as R

HEADER = [(49, "BRK1"), (56, "FIXGW"), (34, 2), (52, "20240102-13:45:12.123")]
ORDER = [(11, "A-1"), (55, "AAPL"), (54, "1"), (38, "100"), (40, "2"), (44, "10.5"), (59, "0"),
         (60, "20240102-13:45:12.123")]


def _raw(msg_type: str, body: list, header: list = HEADER) -> bytes:
    return encode("FIX.4.4", msg_type, header, body, allow_empty=True)


def _check(raw: bytes, options: ValidationOptions = ValidationOptions()):
    return venue_dictionary().validate(decode_message(raw), options)


CASES = [
    ("valid_order", _raw("D", ORDER), None, None),
    ("valid_heartbeat", _raw("0", []), None, None),
    ("unknown_tag", _raw("0", [(999, "HI")]), R.INVALID_TAG_NUMBER, 999),
    ("tag_zero", _raw("0", [(0, "HI")]), R.INVALID_TAG_NUMBER, 0),
    ("user_defined_tag", _raw("0", [(5000, "HI")]), R.INVALID_TAG_NUMBER, 5000),
    ("required_missing", _raw("D", [f for f in ORDER if f[0] != 54]), R.REQUIRED_TAG_MISSING, 54),
    ("header_required_missing", _raw("0", [], HEADER[:1] + HEADER[2:]), R.REQUIRED_TAG_MISSING, 56),
    ("not_in_message", _raw("0", [(55, "MSFT")]), R.TAG_NOT_DEFINED_FOR_MSG_TYPE, 55),
    ("empty_value", _raw("1", [(112, b"")]), R.TAG_WITHOUT_VALUE, 112),
    ("enum_value", _raw("D", [(t, "Z" if t == 54 else v) for t, v in ORDER]), R.VALUE_INCORRECT, 54),
    ("float_format", _raw("D", [(t, "+100" if t == 38 else v) for t, v in ORDER]), R.INCORRECT_DATA_FORMAT, 38),
    ("timestamp_format", _raw("D", [(t, "20240102" if t == 60 else v) for t, v in ORDER]), R.INCORRECT_DATA_FORMAT, 60),
    ("char_too_long", _raw("D", [(t, "12" if t == 54 else v) for t, v in ORDER]), R.INCORRECT_DATA_FORMAT, 54),
    ("repeated_tag", _raw("0", [(112, "A"), (112, "B")]), R.REPEATED_TAG, 112),
    ("header_after_body", _raw("D", ORDER + [(43, "N")]), R.TAG_OUT_OF_ORDER, 43),
    ("invalid_msg_type", _raw("*", []), R.INVALID_MSG_TYPE, None),
    ("group_count_low", _raw("D", ORDER + [(453, 1), (448, "P"), (448, "Q")]), R.GROUP_COUNT_MISMATCH, 453),
    ("group_count_zero", _raw("D", ORDER + [(453, 0)]), None, None),
    ("group_entries", _raw("D", ORDER + [(453, 2), (448, "P"), (452, 1), (448, "Q")]), None, None),
    ("group_starts_wrong", _raw("D", ORDER + [(453, 1), (452, 1), (448, "P")]), R.GROUP_FIELDS_OUT_OF_ORDER, 452),
    ("unsupported_type_header_only", _raw("R", [(131, "Q-1"), (55, "AAPL")]), None, None),
]


@pytest.mark.parametrize("raw, reason, tag", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate(raw: bytes, reason: int | None, tag: int | None) -> None:
    violation = _check(raw)

    found = None if violation is None else (violation.reason, violation.tag)
    assert found == (None if reason is None else (reason, tag))


@pytest.mark.parametrize(
    "raw, options",
    [
        (_raw("1", [(112, b"")]), ValidationOptions(fields_have_values=False)),
        (_raw("0", [(5000, "HI")]), ValidationOptions(user_defined_fields=False)),
        (_raw("D", ORDER + [(43, "N")]), ValidationOptions(fields_out_of_order=False)),
    ],
    ids=["fields_have_values", "user_defined_fields", "fields_out_of_order"],
)
def test_validation_option_off(raw: bytes, options: ValidationOptions) -> None:
    assert _check(raw, options) is None


def test_venue_dictionary_contents() -> None:
    dictionary = venue_dictionary()

    assert {"0", "1", "2", "3", "4", "5", "A", "D", "F", "G", "H", "q"} <= set(dictionary.messages)
    assert dictionary.messages["D"].required == (11, 40, 54)
    assert dictionary.is_known_msg_type("R")
    assert dictionary.is_header_tag(115)


_SMALL = """<fix type='FIX' major='4' minor='2' servicepack='0'>
 <header><field name='BeginString' required='Y'/><field name='MsgType' required='Y'/></header>
 <trailer><field name='CheckSum' required='Y'/></trailer>
 <messages>
  <message name='Heartbeat' msgtype='0' msgcat='admin'>
   <component name='Ids' required='Y'/>
  </message>
 </messages>
 <components>
  <component name='Ids'>
   <field name='TestReqID' required='Y'/>
   <group name='NoIds' required='N'><field name='Id' required='Y'/></group>
  </component>
 </components>
 <fields>
  <field number='8' name='BeginString' type='STRING'/>
  <field number='35' name='MsgType' type='STRING'/>
  <field number='10' name='CheckSum' type='STRING'/>
  <field number='112' name='TestReqID' type='STRING'/>
  <field number='6000' name='NoIds' type='NUMINGROUP'/>
  <field number='6001' name='Id' type='INT'/>
 </fields>
</fix>
"""


def test_load_expands_components(tmp_path: Path) -> None:
    path = tmp_path / "small.xml"
    path.write_text(_SMALL)

    dictionary = load_dictionary(path)

    heartbeat = dictionary.messages["0"]
    assert dictionary.begin_string == "FIX.4.2"
    assert heartbeat.required == (112,)
    assert heartbeat.tags == {112, 6000}
    assert heartbeat.groups[6000].delimiter == 6001
    assert heartbeat.is_admin


def test_load_unknown_field_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_text(_SMALL.replace("name='TestReqID' required='Y'", "name='NoSuchField' required='Y'"))

    with pytest.raises(ConfigError, match="refers to 'NoSuchField'"):
        load_dictionary(path)


def test_load_missing_file_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.xml"):
        load_dictionary(tmp_path / "missing.xml")
