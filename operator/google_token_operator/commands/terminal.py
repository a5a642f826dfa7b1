"""Text from the cluster, made safe to print on a terminal.

Messages, Events and statuses can be written by any user of a namespace. An escape sequence in
one of them could rewrite the screen, the window title or the clipboard of whoever runs
`status` (kubectl had the same hole: CVE-2021-25743), so control characters are shown as
``\\xNN`` instead. JSON and YAML output need none of this: their serializers escape them.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, and C1 controls (0x9b alone starts a sequence on some
# terminals).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)
