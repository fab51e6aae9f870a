"""The configuration checksum: SHA-512 over the parsed server blocks (CoreDNS's reload hash).

Computed from tokens after imports, snippets and {$ENV} are expanded, so whitespace and comment
edits do not count as a change, while an edit inside an imported file does. Shared by the server
(which reports the running digest) and the reload plugin (which polls the file).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from kdns.corefile.parser import ServerBlock


def config_digest(blocks: Sequence[ServerBlock]) -> str:
    """Hex SHA-512 of ``blocks``: keys and every directive's tokens, in order."""
    data = [
        {"keys": [k.text for k in b.keys],
         "body": [[t.text for t in d.tokens] for d in b.directives]}
        for b in blocks
    ]
    return hashlib.sha512(json.dumps(data).encode()).hexdigest()
