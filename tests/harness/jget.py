#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# One value from the JSON on stdin, for the shell tests:
#
#     ztna --json status | jget.py daemon/generation
#
# The path is keys joined by '/'; in a list, "name=X" picks the element
# whose "name" is X. A string prints bare, anything else as JSON, a missing
# key as "absent".
import json
import sys

v = json.load(sys.stdin)
for key in sys.argv[1].split("/"):
    if isinstance(v, list) and key.startswith("name="):
        v = next((e for e in v if isinstance(e, dict) and e.get("name") == key[5:]), None)
    elif isinstance(v, dict) and key in v:
        v = v[key]
    else:
        print("absent")
        sys.exit(0)
print(v if isinstance(v, str) else json.dumps(v))
