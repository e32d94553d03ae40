"""Messages to JSON-able dicts and back, strictly typed (a cattrs converter).

Structuring accepts exactly the JSON types of PROTOCOL.md: integers that are
not booleans, strings, lists, objects; anything missing or mistyped is an
``InvalidMessageError`` (a ``HelloRejectedError`` for ``hello``, whose rules
are ordered). Unknown fields are ignored. Every structured message has also
passed ``lanparty.ctrl.validation``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from lanparty.credentials import b64url
from lanparty.ctrl.errors import InvalidMessageError, MissingTypeError, UnknownTypeError
from lanparty.ctrl.messages import (
    Disconnect,
    DropCounts,
    Hello,
    Message,
    MessageType,
    PeerJoined,
    PeerLeft,
    Reject,
    RelayMessage,
    Stats,
    Welcome,
)
from lanparty.ctrl.validation import (
    is_unicode_text,
    json_kind,
    validate_hello,
    validate_relay_message,
)
from lanparty.proto.mac import InvalidMacError

_DESCRIPTION_CHARS = 300


def _structure_int(value: object, _: type) -> int:
    if type(value) is not int:
        raise TypeError(f"must be an integer, not {json_kind(value)}")
    return value


def _structure_str(value: object, _: type) -> str:
    if type(value) is not str:
        raise TypeError(f"must be a string, not {json_kind(value)}")
    if not is_unicode_text(value):
        raise ValueError("is not valid Unicode text")
    return value


def _structure_str_enum(value: object, enum_cls: type[StrEnum]) -> StrEnum:
    if type(value) is str and value in enum_cls._value2member_map_:
        return enum_cls(value)
    allowed = ", ".join(repr(member.value) for member in enum_cls)
    raise ValueError(f"must be one of {allowed}")


def _is_homogeneous_tuple(cls: Any) -> bool:
    args = typing.get_args(cls)
    return typing.get_origin(cls) is tuple and len(args) == 2 and args[1] is Ellipsis


def _structure_drops(value: object, _: type) -> DropCounts:
    if type(value) is not dict:
        raise TypeError(f"must be an object, not {json_kind(value)}")
    for reason, count in value.items():
        if type(count) is not int:
            raise TypeError(f"count for {reason!r} must be an integer, not {json_kind(count)}")
        if not is_unicode_text(reason):
            raise ValueError("holds a reason that is not valid Unicode text")
    return tuple(value.items())


def _unstructure_drops(drops: DropCounts) -> dict[str, int]:
    return dict(drops)


def _unstructure_hello(hello: Hello) -> dict[str, Any]:
    """Byte strings as base64url, fields a role does not send left out."""
    fields: dict[str, Any] = {}
    for field in attrs.fields(Hello):
        value = getattr(hello, field.name)
        if value is None:
            continue
        if isinstance(value, bytes):
            value = b64url(value)
        elif isinstance(value, StrEnum):
            value = value.value
        fields[field.name] = value
    return fields


def make_converter() -> cattrs.Converter:
    """A converter for control messages; ``converter`` is the shared instance."""
    converter = cattrs.Converter(detailed_validation=True)
    # class hooks dispatch on the MRO: StrEnum's must exist so that str's misses enums
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(StrEnum, _structure_str_enum)
    converter.register_unstructure_hook(StrEnum, lambda member: member.value)

    def tuple_hook(cls: Any) -> Callable[[object, type], tuple[Any, ...]]:
        (item_type, _) = typing.get_args(cls)
        list_type: Any = list[item_type]  # type: ignore[valid-type]
        list_hook = converter.get_structure_hook(list_type)

        def structure(value: object, _: type) -> tuple[Any, ...]:
            if type(value) is not list:
                raise TypeError(f"must be a list, not {json_kind(value)}")
            return tuple(list_hook(value, list_type))

        return structure

    converter.register_structure_hook_factory(_is_homogeneous_tuple, tuple_hook)
    converter.register_unstructure_hook_factory(
        _is_homogeneous_tuple,
        lambda cls: lambda value: [converter.unstructure(item) for item in value],
    )

    def attrs_hook(cls: type[Any]) -> Callable[[object, type], Any]:
        if cls is Stats:
            drops = override(struct_hook=_structure_drops)
            fields_hook = make_dict_structure_fn(cls, converter, drops=drops)
        else:
            fields_hook = make_dict_structure_fn(cls, converter)

        def structure(value: object, _: type) -> Any:
            if type(value) is not dict:
                raise TypeError(f"must be an object, not {json_kind(value)}")
            return fields_hook(value, cls)

        return structure

    converter.register_structure_hook_factory(attrs.has, attrs_hook)
    converter.register_unstructure_hook(Hello, _unstructure_hello)
    converter.register_unstructure_hook(
        Welcome,
        make_dict_unstructure_fn(Welcome, converter, room_name=override(omit_if_default=True)),
    )
    converter.register_unstructure_hook(
        Stats,
        make_dict_unstructure_fn(
            Stats, converter, drops=override(unstruct_hook=_unstructure_drops)
        ),
    )
    return converter


converter = make_converter()
# hello is not structured by the converter: its rules must run in protocol order
_STRUCTURED_CLASSES: dict[MessageType, type[RelayMessage]] = {
    cls.TYPE: cls for cls in (Welcome, Reject, PeerJoined, PeerLeft, Stats, Disconnect)
}


def unstructure_message(message: Message) -> dict[str, Any]:
    """The JSON object of a message, ``type`` first."""
    fields: dict[str, Any] = converter.unstructure(message)
    return {"type": message.TYPE.value, **fields}


def _format_problem(exc: BaseException, _: type | None) -> str:
    if isinstance(exc, KeyError):
        return "is missing"
    return str(exc)


def _describe(exc: BaseException) -> str:
    problems = []
    for line in cattrs.transform_error(exc, path="", format_exception=_format_problem):
        problem, _, path = line.rpartition(" @ ")
        problems.append(f"{path.lstrip('.')} {problem}" if path else problem)
    description = "; ".join(problems)
    # a peer's oversized value must not become an oversized log line
    if len(description) > _DESCRIPTION_CHARS:
        return description[:_DESCRIPTION_CHARS] + "..."
    return description


def structure_message(fields: Mapping[str, Any]) -> Message:
    """The message a decoded JSON object holds, typed and validated.

    Raises ``MissingTypeError``, ``UnknownTypeError``, ``HelloRejectedError``
    (for ``hello``) or ``InvalidMessageError``; all are ``ControlProtocolError``.
    """
    type_text = fields.get("type")
    if type(type_text) is not str:
        raise MissingTypeError("the control message has no string 'type' field")
    try:
        message_type = MessageType(type_text)
    except ValueError:
        raise UnknownTypeError(type_text) from None
    if message_type is MessageType.HELLO:
        return validate_hello(fields)
    try:
        message = converter.structure(fields, _STRUCTURED_CLASSES[message_type])
    except (cattrs.BaseValidationError, InvalidMacError) as exc:
        raise InvalidMessageError(
            f"the {message_type} message is malformed: {_describe(exc)}"
        ) from None
    validate_relay_message(message)
    return message
