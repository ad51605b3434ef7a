"""Exceptions of the gateway package.

Exceptions are for broken input at the edge (a malformed settings file, a garbled message)
and for impossible states. A rejected order or message is an outcome, returned as a value.

::

    FixError                      base of every gateway exception
    ├── ConfigError               a configuration file or value is invalid (also a ValueError)
    │   └── SettingsError         a QuickFIX-format session settings file is invalid
    ├── ApplianceError            the appliance cannot start as configured
    └── CodecError                bytes could not be decoded or encoded as FIX
        ├── MessageTooLargeError  a peer declared a BodyLength (9) above the configured limit
        ├── GarbledMessageError   bytes given as one whole message are not one valid message
        └── FieldFormatError      a field value has the wrong format (also a ValueError)

A garbled frame on a connection is not an exception: the decoder returns it as a value and
the session discards it. GarbledMessageError is for bytes that must be one valid message,
such as a stored message read back for a resend.
"""

from __future__ import annotations


class FixError(Exception):
    """Base class of every exception the gateway raises."""


class ApplianceError(FixError):
    """The appliance cannot start: a port or the audit trail is unavailable."""


class ConfigError(FixError, ValueError):
    """A configuration file or value is invalid; the message names the file, key and value."""


class SettingsError(ConfigError):
    """A session settings file is invalid.

    ``source`` is the file name, ``line`` the 1-based line number (None when the error
    concerns the whole file), ``key`` and ``value`` the offending setting when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str,
        line: int | None = None,
        key: str | None = None,
        value: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.line = line
        self.key = key
        self.value = value


class CodecError(FixError):
    """Bytes could not be decoded or encoded as FIX tag=value."""


class MessageTooLargeError(CodecError):
    """A peer declared a BodyLength (9) above the decoder's ``max_message_size``.

    The session disconnects the peer, because the decoder cannot find the next message
    without reading the oversized one.
    """


class GarbledMessageError(CodecError):
    """Bytes that must contain exactly one valid message do not; the message gives the reason."""


class FieldFormatError(CodecError, ValueError):
    """A field value has the wrong format for its type or for the wire.

    ``tag`` is the field's tag number and ``value`` the offending value, so the session can
    name them in a Reject (3) with RefTagID (371).
    """

    def __init__(self, message: str, *, tag: int, value: object) -> None:
        super().__init__(message)
        self.tag = tag
        self.value = value
