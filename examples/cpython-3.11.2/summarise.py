"""One line per sync report: what it did."""

import collections
import json
import sys

with open(sys.argv[1]) as fh:
    d = json.load(fh)
acts = collections.Counter(a["action"] for a in d["actions"])
print("   ", dict(acts), "problems:", len(d["problems"]))
