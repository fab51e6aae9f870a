"""Corefile lexing and parsing (CoreDNS/caddy grammar); tokens carry file:line."""

from __future__ import annotations

from kdns.corefile.address import ZoneAddress, parse_key
from kdns.corefile.dispenser import Dispenser, parse_duration
from kdns.corefile.lexer import Token, tokenize
from kdns.corefile.parser import Directive, ServerBlock, parse_file, parse_text

__all__ = [
    "Directive", "Dispenser", "ServerBlock", "Token", "ZoneAddress", "parse_duration",
    "parse_file", "parse_key", "parse_text", "tokenize",
]
