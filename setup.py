"""The package's long description: the README with links a package index can follow.

Everything else is in pyproject.toml. The README's links are relative (they work on the repository's
own pages); here each becomes absolute against the repository URL in ``[project.urls]``, and the
block between ``<!-- repository-only -->`` markers (the repository's own make commands) is left out.
"""

import re

from setuptools import setup

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

with open("pyproject.toml", "rb") as f:
    REPOSITORY = tomllib.load(f)["project"]["urls"]["Repository"].rstrip("/")


def absolute(match):
    text, target = match.group(1), match.group(2)
    if re.match(r"[a-z]+:", target):
        return match.group(0)
    if target.startswith("#"):
        return f"[{text}]({REPOSITORY}{target})"
    kind = "raw/main" if target.lower().endswith((".png", ".jpg", ".svg")) else "blob/main"
    return f"[{text}]({REPOSITORY}/{kind}/{target})"


def long_description() -> str:
    with open("README.md", encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"<!-- repository-only -->.*?<!-- /repository-only -->\n*", "", text, flags=re.S)
    return re.sub(r"\[([^\]]*)\]\(([^)\s]+)\)", absolute, text)


setup(long_description=long_description(), long_description_content_type="text/markdown")
