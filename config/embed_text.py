#!/usr/bin/env python3
"""Writes a C++ header holding a text file as a std::string_view constant.

usage: embed_text.py INPUT OUTPUT NAME

The text goes in as a raw string literal, so the header stays readable
and the file's bytes are the constant's bytes.
"""
import pathlib
import sys

DELIM = "ringmail_embed"


def main() -> int:
    src, out, name = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    text = src.read_text(encoding="utf-8")
    if f'){DELIM}"' in text:
        print(f"{src}: contains the raw string delimiter ){DELIM}\"", file=sys.stderr)
        return 1
    header = (f"// Generated from {src.name} by config/embed_text.py; do not edit.\n"
              "#pragma once\n\n#include <string_view>\n\n"
              f"inline constexpr std::string_view {name} = R\"{DELIM}({text}){DELIM}\";\n")
    if not out.exists() or out.read_text(encoding="utf-8") != header:
        out.write_text(header, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
