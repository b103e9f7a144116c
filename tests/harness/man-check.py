#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Checks a program's --help against its man page, both ways.

    man-check.py HELP_TEXT MAN_PAGE

The options (long and short) a --help lists must be the tags of the man
page's OPTIONS section and no others; the exit codes of --help's "Exit
status" must be the tags of EXIT STATUS; with a "Commands:" block, its
commands must be the tags of COMMANDS. Prints what differs; exits 1 then.
"""
import re
import sys


def man_sections(text):
    sections, name = {}, None
    for line in text.splitlines():
        if line.startswith(".SH "):
            name = line[4:].strip().strip('"')
            sections[name] = []
        elif name:
            sections[name].append(line)
    return sections


def tags(lines):
    """The tag line after each .TP, in roff, escapes undone."""
    out = []
    for i, line in enumerate(lines[:-1]):
        if line.strip() == ".TP":
            t = lines[i + 1]
            t = re.sub(r"\\f[BIRP]", "", t)
            t = t.replace("\\-", "-")
            t = re.sub(r"^\.(B|BR|BI|I|IR|RB)\s+", "", t)
            out.append(t.replace('"', ""))
    return out


def help_options(text):
    opts = set()
    for line in text.splitlines():
        m = re.match(r"^\s+(?:(-[A-Za-z]), )?(--[a-z][a-z0-9-]*)", line)
        if m:
            opts.update(o for o in m.groups() if o)
    return opts


def man_options(tag_lines):
    opts = set()
    for t in tag_lines:
        opts.update(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[A-Za-z])(?![\w-])", t))
    return opts


def help_block(text, title):
    m = re.search(r"^" + re.escape(title) + r":?[ \t]*(.*?)(?:\n\s*\n|\Z)", text, re.M | re.S)
    return m.group(1) if m else None


def help_exit_codes(text):
    block = help_block(text, "Exit status")
    if block is None:
        return None
    return set(re.findall(r"(?:^|\n|;|:)\s*(\d{1,3})(?=\s)", block))


def help_commands(text):
    block = help_block(text, "Commands")
    if block is None:
        return None
    cmds = set()
    for line in block.splitlines():
        m = re.match(r"^\s{1,3}([a-z][a-z ]*?[a-z])(?:\s+[A-Z[][A-Z\]\[ ]*)?(?:\s{2,}|$)", line)
        if m:
            cmds.add(m.group(1))
    return cmds


def man_commands(tag_lines):
    cmds = set()
    for t in tag_lines:
        words = []
        for w in t.split():
            if not re.fullmatch(r"[a-z]+", w):
                break
            words.append(w)
        if words:
            cmds.add(" ".join(words))
    return cmds


def compare(what, from_help, from_man, problems):
    for x in sorted(from_help - from_man):
        problems.append("%s %s is in --help but not in the man page" % (what, x))
    for x in sorted(from_man - from_help):
        problems.append("%s %s is in the man page but not in --help" % (what, x))


def main():
    help_text = open(sys.argv[1]).read()
    sections = man_sections(open(sys.argv[2]).read())
    problems = []
    compare("option", help_options(help_text), man_options(tags(sections.get("OPTIONS", []))), problems)
    codes = help_exit_codes(help_text)
    if codes is None:
        problems.append("--help has no \"Exit status\"")
    else:
        man_codes = {t.split()[0] for t in tags(sections.get("EXIT STATUS", [])) if t.split()}
        compare("exit code", codes, man_codes, problems)
    cmds = help_commands(help_text)
    if cmds is not None:
        compare("command", cmds, man_commands(tags(sections.get("COMMANDS", []))), problems)
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


main()
