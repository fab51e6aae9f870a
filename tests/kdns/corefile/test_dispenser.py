from __future__ import annotations

import pytest

from kdns.corefile import Dispenser, parse_duration, parse_text


def dispenser(text: str) -> Dispenser:
    return Dispenser(parse_text(f". {{\n{text}\n}}\n", "Corefile")[0].directives[0])


def test_args_and_block() -> None:
    d = dispenser("forward . 1.1.1.1 2.2.2.2 {\n max_fails 3\n force_tcp\n policy random\n}")
    assert d.args() == [".", "1.1.1.1", "2.2.2.2"]
    seen = []
    for key in d.block():
        seen.append((key, d.args()))
    assert seen == [("max_fails", ["3"]), ("force_tcp", []), ("policy", ["random"])]


def test_block_skips_unconsumed_args_and_nested_blocks() -> None:
    d = dispenser("x {\n a 1 2 {\n inner 3\n }\n b\n}")
    d.args()
    assert list(d.block()) == ["a", "b"]


def test_errors_name_file_and_line() -> None:
    d = dispenser("cache {\n sucess 10\n}")
    d.args()
    with pytest.raises(Exception) as e:
        for _ in d.block():
            raise d.unknown_property()
    assert str(e.value) == ("plugin/cache: Corefile:3 - Error during parsing: "
                            "unknown property 'sucess'")


def test_arg_count() -> None:
    d = dispenser("cache 1 2")
    with pytest.raises(Exception, match="Wrong argument count or unexpected line ending after"):
        d.args(max=1)


@pytest.mark.parametrize("text,secs", [
    ("5s", 5.0), ("1m30s", 90.0), ("250ms", 0.25), ("30", 30.0), ("1h", 3600.0), ("x", None),
    ("5", 5.0), ("", None), ("5q", None), ("1.5s", 1.5),
])
def test_durations(text: str, secs: float | None) -> None:
    assert parse_duration(text) == secs
