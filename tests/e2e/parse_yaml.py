# Run with Debian's /usr/bin/python3 (python3-yaml). Prints the YAML documents of the file named by argv[1] as one
# JSON array.
import json
import sys

import yaml

with open(sys.argv[1]) as f:
    print(json.dumps([d for d in yaml.safe_load_all(f) if d is not None]))
