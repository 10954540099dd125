"""Generate an AWX / Automation Controller survey spec from the roles' meta/argument_specs.yml.

The survey asks for a chosen list of role variables; each question is built from the variable's
argument spec (type, choices, default, required, description, no_log), so the form and the roles'
validation agree. The output is the JSON body that the controller API
(POST /api/v2/job_templates/<id>/survey_spec/) and awxkit
(`awx job_templates modify <id> --survey_enabled true --survey_spec @site-survey.json`) take:
``{"name", "description", "spec": [question, ...]}``.

Type mapping (argument spec -> survey question):
  str / path / raw        text  (password when the option is no_log)
  str with choices        multiplechoice (an empty-string choice becomes "not required, no default")
  int / float             integer / float (also multiplechoice when the option has choices)
  bool                    multiplechoice true / false
  list with choices       multiselect (default joined by newlines, as AWX stores it)
  list/dict otherwise     refused: a survey answer is a scalar
Defaults that are Jinja2 templates or empty strings are left out (the role computes them; an
unanswered question without a default is not passed, so the inventory's host vars still apply). ``min`` / ``max`` come
from the argument spec when it gives them, else from the selection file (for integer and float
questions they bound the value, for text questions its length).

Usage:
  python scripts/survey_spec.py --select awx/site-survey.select.yml -o awx/site-survey.json
  python scripts/survey_spec.py --select awx/site-survey.select.yml --check awx/site-survey.json
  python scripts/survey_spec.py istio_version istio_profile      # ad hoc, to stdout
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("prereqs", "istio", "addons", "bookinfo", "gateway")
TEXT_TYPES = {"str", "path", "raw"}


class SurveyError(ValueError):
    """A variable cannot be made into a survey question; the message names it."""


def load_options(root: Path = ROOT, roles: tuple[str, ...] = ROLES) -> dict[str, dict[str, Any]]:
    """variable -> its argument spec (entry point main), with the role it belongs to."""
    options: dict[str, dict[str, Any]] = {}
    for role in roles:
        spec = yaml.safe_load((root / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
        for name, opt in (spec["argument_specs"]["main"].get("options") or {}).items():
            options[name] = dict(opt or {}, _role=role)
    return options


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def question(variable: str, opt: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """One survey question for ``variable`` from its argument spec ``opt``."""
    overrides = dict(overrides or {})
    otype = opt.get("type", "str")
    choices = opt.get("choices")
    default = opt.get("default")
    has_default = "default" in opt and default is not None and not _templated(default)
    required = bool(overrides.pop("required", opt.get("required", False)))
    description = opt.get("description", "")
    if isinstance(description, list):
        description = " ".join(description)
    q: dict[str, Any] = {
        "question_name": overrides.pop("question_name", variable),
        "question_description": overrides.pop("question_description", description),
        "variable": variable,
        "required": required,
    }
    if otype == "bool":
        q["type"] = "multiplechoice"
        q["choices"] = ["true", "false"]
        if has_default:
            q["default"] = _scalar(bool(default))
    elif choices is not None and otype in TEXT_TYPES | {"int", "float"}:
        values = [_scalar(c) for c in choices]
        if "" in values:  # "" means "not set": leave the question unanswered instead
            values.remove("")
            if required:
                raise SurveyError(f"{variable}: a required question cannot offer the empty choice")
        q["type"] = "multiplechoice"
        q["choices"] = values
        if has_default and _scalar(default) != "":
            q["default"] = _scalar(default)
    elif otype == "list":
        if not choices:
            raise SurveyError(f"{variable}: a list without choices cannot be a survey question (answers are scalars)")
        q["type"] = "multiselect"
        q["choices"] = [_scalar(c) for c in choices]
        if has_default and default:
            q["default"] = "\n".join(_scalar(d) for d in default)
    elif otype == "int":
        q["type"] = "integer"
        if has_default:
            q["default"] = int(default)
    elif otype == "float":
        q["type"] = "float"
        if has_default:
            q["default"] = float(default)
    elif otype in TEXT_TYPES:
        q["type"] = "password" if opt.get("no_log") else overrides.pop("type", "text")
        if has_default and not opt.get("no_log") and _scalar(default) != "":
            q["default"] = _scalar(default)
    else:
        raise SurveyError(f"{variable}: type {otype} cannot be a survey question")
    for key in ("min", "max"):
        value = opt.get(key, overrides.pop(key, None))
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SurveyError(f"{variable}: {key} must be an integer (got {value!r})")
            q[key] = value
    if overrides:
        raise SurveyError(f"{variable}: unknown question settings {sorted(overrides)}")
    return q


def build(selection: dict[str, Any], options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The survey spec for ``selection`` = {name, description, questions: [variable | {variable, ...}]}."""
    spec = []
    for item in selection.get("questions") or []:
        entry = {"variable": item} if isinstance(item, str) else dict(item)
        variable = entry.pop("variable", None)
        if not variable:
            raise SurveyError(f"a question without a variable: {item!r}")
        if variable not in options:
            raise SurveyError(f"{variable}: no role's meta/argument_specs.yml defines it")
        spec.append(question(variable, options[variable], entry))
    if not spec:
        raise SurveyError("no questions selected")
    seen = [q["variable"] for q in spec]
    dupes = sorted({v for v in seen if seen.count(v) > 1})
    if dupes:
        raise SurveyError(f"variables asked twice: {', '.join(dupes)}")
    return {"name": selection.get("name", "okemesh.istio"), "description": selection.get("description", ""), "spec": spec}


def render(survey: dict[str, Any]) -> str:
    return json.dumps(survey, indent=2, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("variables", nargs="*", help="variables to ask for (instead of --select)")
    parser.add_argument("--select", type=Path, help="selection file: name, description, questions")
    parser.add_argument("-o", "--output", type=Path, help="write the spec here (atomically); default stdout")
    parser.add_argument("--check", type=Path, help="exit 1 when this file differs from the generated spec")
    parser.add_argument("--root", type=Path, default=ROOT, help="collection root (roles/<role>/meta/argument_specs.yml)")
    args = parser.parse_args(argv)
    if bool(args.select) == bool(args.variables):
        parser.error("give either --select FILE or variable names")
    selection = yaml.safe_load(args.select.read_text(encoding="utf-8")) if args.select else {
        "name": "okemesh.istio", "description": "", "questions": args.variables}
    try:
        text = render(build(selection, load_options(args.root)))
    except SurveyError as err:
        print(f"survey_spec: {err}", file=sys.stderr)
        return 2
    if args.check:
        if not args.check.exists() or args.check.read_text(encoding="utf-8") != text:
            print(f"survey_spec: {args.check} is not what the argument specs give; regenerate it", file=sys.stderr)
            return 1
        return 0
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
