"""kdns.hostport: Go's SplitHostPort plus a numeric port, for the side HTTP addresses."""

from __future__ import annotations

import pytest

from kdns.hostport import split_host_port


@pytest.mark.parametrize("address,expected", [
    (":8080", ("", 8080)), ("localhost:9153", ("localhost", 9153)), ("[::1]:1", ("::1", 1)),
    ("[::]:8181", ("::", 8181)), ("0.0.0.0:0", ("0.0.0.0", 0)), ("bla:65535", ("bla", 65535)),
])
def test_valid(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected


@pytest.mark.parametrize("address,error", [
    ("bla", "address bla: missing port in address"),
    ("bla:a", "address bla:a: invalid port 'a'"),
    ("a:b:c", "address a:b:c: too many colons in address"),
    ("::1:80", "address ::1:80: too many colons in address"),
    ("[::1]", "address [::1]: missing port in address"),
    ("[::1:80", "address [::1:80: missing port in address"),
    ("h:70000", "address h:70000: invalid port '70000'"),
    ("h:", "address h:: invalid port ''"),
    ("h:-1", "address h:-1: invalid port '-1'"),
])
def test_invalid(address: str, error: str) -> None:
    with pytest.raises(ValueError) as e:
        split_host_port(address)
    assert str(e.value) == error
