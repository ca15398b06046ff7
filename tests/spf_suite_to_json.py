#!/usr/bin/env python3
"""Converts the openspf RFC 7208 test suite (YAML, several documents) to one
JSON array of its documents, unchanged, for tests/spf_rfc7208_test.cc.

usage: spf_suite_to_json.py SUITE.yml OUT.json
"""
import json
import sys

import yaml  # Debian: python3-yaml


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        docs = list(yaml.safe_load_all(f))
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        json.dump(docs, out, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
