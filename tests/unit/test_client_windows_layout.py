"""The Windows cffi declarations agree with the mingw-w64 headers, at compile time.

Each ``lanparty/client/windows/_decl_*.py`` module (found by file name, so a
new one is checked without editing this file) is turned into a C file of
``_Static_assert``s by ``tests/winlayout.py`` and compiled with the mingw-w64
cross compiler. The negative controls show that a drifted declaration fails
the compile with an error naming what drifted.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import cffi
import pytest

from lanparty.client.windows import _decl_kernel32, _decl_shell32
from tests import winlayout

MODULE_NAMES = winlayout.declaration_module_names()


def compile_or_fail(source: str, path: Path) -> tuple[int, str]:
    try:
        result = winlayout.compile_probe(source, path)
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    return result.returncode, result.stderr


def test_every_declaration_module_is_found() -> None:
    assert {
        "lanparty.client.windows._decl_kernel32",
        "lanparty.client.windows._decl_advapi32",
        "lanparty.client.windows._decl_shell32",
    } <= set(MODULE_NAMES)


@pytest.mark.parametrize("module_name", MODULE_NAMES)
def test_declarations_match_the_windows_headers(module_name: str, tmp_path: Path) -> None:
    declarations = winlayout.load_declarations(module_name)
    source = winlayout.generate_probe(declarations, title=module_name)
    returncode, stderr = compile_or_fail(source, tmp_path / f"{module_name}.c")
    assert returncode == 0, f"{module_name} differs from the Windows headers:\n{stderr}"


def test_the_probe_checks_every_field_constant_and_function() -> None:
    source = winlayout.generate_probe(_decl_shell32)
    fields = [name for name, _ in _decl_shell32.ffi.typeof("SHELLEXECUTEINFOW").fields]
    assert len(fields) == 16  # hIcon and hMonitor, the unnamed union's members, included
    for field in fields:
        assert f"offsetof(SHELLEXECUTEINFOW, {field}) ==" in source
        assert f"sizeof(((SHELLEXECUTEINFOW *)0)->{field}) ==" in source
    for constant in _decl_shell32.CONSTANTS:
        assert f'"{constant} == ' in source
    assert "ShellExecuteExW(*(void **)0)" in source
    kernel32 = winlayout.generate_probe(_decl_kernel32)
    assert (
        "(long long)(CTL_CODE(FILE_DEVICE_UNKNOWN, 6, METHOD_BUFFERED, FILE_ANY_ACCESS))"
        " == 0x220018LL" in kernel32
    )
    for function in (
        "CreateFileW",
        "DeviceIoControl",
        "CloseHandle",
        "GetCurrentProcess",
        "GetCurrentProcessId",
        "GetConsoleProcessList",
        "CreateToolhelp32Snapshot",
        "Process32FirstW",
        "Process32NextW",
        "SetConsoleCtrlHandler",
    ):
        assert f"{function}(" in kernel32
    assert "offsetof(PROCESSENTRY32W, szExeFile) == 44" in kernel32
    assert '"CTRL_CLOSE_EVENT == 0x2' in kernel32


def test_nested_structs_arrays_and_bit_fields_are_walked() -> None:
    ffi = cffi.FFI()
    ffi.cdef(
        """
        typedef struct { uint16_t a; uint32_t b; } INNER;
        typedef struct { uint8_t tag; INNER one; INNER many[2]; uint8_t bits : 3; } OUTER;
        """
    )
    module = types.SimpleNamespace(
        ffi=ffi, HEADERS=("windows.h",), STRUCTS=("OUTER",), CONSTANTS={}, CONSTANT_EXPRESSIONS={}
    )
    source = winlayout.generate_probe(module)
    assert "offsetof(OUTER, one.b) == 8" in source
    assert "offsetof(OUTER, many[0].b) == 16" in source
    assert "sizeof(((OUTER *)0)->many) == 16" in source
    assert "OUTER.bits: bit-field" in source
    assert "offsetof(OUTER, bits)" not in source


def test_a_module_that_breaks_the_contract_is_refused() -> None:
    module = types.SimpleNamespace(
        ffi=_decl_kernel32.ffi,
        HEADERS=("windows.h",),
        STRUCTS=("NO_SUCH_STRUCT",),
        CONSTANTS={},
        CONSTANT_EXPRESSIONS={},
    )
    with pytest.raises(ValueError, match="NO_SUCH_STRUCT"):
        winlayout.generate_probe(module)
    module.STRUCTS = ()
    module.CONSTANT_EXPRESSIONS = {"ORPHAN": "1"}
    with pytest.raises(ValueError, match="ORPHAN"):
        winlayout.generate_probe(module)


def drifted_shell32(cdef: str, constants: dict[str, int]) -> types.SimpleNamespace:
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    return types.SimpleNamespace(
        ffi=ffi,
        HEADERS=_decl_shell32.HEADERS,
        STRUCTS=_decl_shell32.STRUCTS,
        CONSTANTS=constants,
        CONSTANT_EXPRESSIONS={},
    )


@pytest.mark.parametrize(
    ("old", "new", "constants", "named"),
    [
        # A field one size too wide: its own size, then every later offset, is wrong.
        ("uint32_t fMask;", "uint64_t fMask;", {}, "SHELLEXECUTEINFOW.fMask: offset 8"),
        # A field too narrow, the struct's size unchanged (alignment padding hides it).
        ("int32_t nShow;", "int16_t nShow;", {}, "SHELLEXECUTEINFOW.nShow: size 2"),
        # A constant with the wrong value.
        ("", "", {"SW_SHOWNORMAL": 5}, "SW_SHOWNORMAL == 0x5"),
        # A function declared with one argument too many.
        (
            "ShellExecuteExW(SHELLEXECUTEINFOW *pExecInfo);",
            "ShellExecuteExW(SHELLEXECUTEINFOW *pExecInfo, uint32_t extra);",
            {},
            "too many arguments to function 'ShellExecuteExW'",
        ),
        # A function result declared wider than the header's BOOL.
        ("int32_t WINAPI ShellExecuteExW", "int64_t WINAPI ShellExecuteExW", {}, "result size 8"),
    ],
)
def test_a_drifted_declaration_fails_to_compile_naming_what_drifted(
    old: str, new: str, constants: dict[str, int], named: str, tmp_path: Path
) -> None:
    assert old in _decl_shell32.CDEF
    module = drifted_shell32(_decl_shell32.CDEF.replace(old, new), constants)
    returncode, stderr = compile_or_fail(winlayout.generate_probe(module), tmp_path / "drift.c")
    assert returncode != 0
    # GCC quotes with typographic quotes in a UTF-8 locale, ASCII ones otherwise.
    assert named in re.sub("[\u2018\u2019]", "'", stderr), stderr


def test_a_missing_compiler_is_an_error_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(winlayout, "COMPILER", "no-such-compiler-x86_64-w64-mingw32-gcc")
    with pytest.raises(FileNotFoundError, match=r"scripts/test\.sh"):
        winlayout.compile_probe("", tmp_path / "empty.c")


def drifted_kernel32(old: str, new: str) -> types.SimpleNamespace:
    assert old in _decl_kernel32.CDEF
    ffi = cffi.FFI()
    ffi.cdef(_decl_kernel32.CDEF.replace(old, new))
    return types.SimpleNamespace(
        ffi=ffi,
        HEADERS=_decl_kernel32.HEADERS,
        STRUCTS=_decl_kernel32.STRUCTS,
        CONSTANTS={},
        CONSTANT_EXPRESSIONS={},
    )


def test_a_callback_type_is_called_and_passed_as_the_headers() -> None:
    source = winlayout.generate_probe(_decl_kernel32)
    assert "((PHANDLER_ROUTINE)0)(*(uint32_t *)0)" in source
    assert "SetConsoleCtrlHandler(*(PHANDLER_ROUTINE *)0, *(int32_t *)0)" in source


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        # The console control handler's argument declared wider than the header's DWORD.
        ("*PHANDLER_ROUTINE)(uint32_t", "*PHANDLER_ROUTINE)(uint64_t", "conversion"),
        # Its result wider than BOOL.
        (
            "int32_t (WINAPI *PHANDLER_ROUTINE)",
            "int64_t (WINAPI *PHANDLER_ROUTINE)",
            "result size 8",
        ),
    ],
)
def test_a_drifted_callback_type_fails_to_compile(
    old: str, new: str, named: str, tmp_path: Path
) -> None:
    module = drifted_kernel32(old, new)
    returncode, stderr = compile_or_fail(winlayout.generate_probe(module), tmp_path / "drift.c")
    assert returncode != 0
    assert named in stderr, stderr
