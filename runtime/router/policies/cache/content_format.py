"""Whether a chat template reads message content as a string or as a list of parts, as vLLM detects it.

vLLM hands a template each message's content in one of two shapes (``--chat-template-content-format``,
``auto`` by default): ``string`` (text parts joined with newlines) or ``openai`` (a list of
``{"type": "text", "text": ...}`` parts). ``auto`` looks at the template's syntax tree: a template
with a ``for`` loop over a message's ``content`` (directly, through a variable assigned from the
messages, or through a macro parameter given a message's content) gets parts, any other gets a
string. This mirrors vLLM 0.32's ``_detect_content_format`` and the walkers it uses
(``vllm/renderers/hf.py``), on the same jinja2 syntax tree. ``tests/runtime/router/test_vllm_chat.py``
checks it against vLLM's own function.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Literal

from jinja2 import nodes

__all__ = ["ContentFormat", "detect_content_format"]

ContentFormat = Literal["string", "openai"]


def _is_var(node: nodes.Node, varname: str) -> bool:
    return isinstance(node, nodes.Name) and node.ctx == "load" and node.name == varname


def _is_attr(node: nodes.Node, varname: str, key: str) -> bool:
    if isinstance(node, nodes.Getitem):
        return _is_var(node.node, varname) and isinstance(node.arg, nodes.Const) and node.arg.value == key
    if isinstance(node, nodes.Getattr):
        return _is_var(node.node, varname) and node.attr == key
    return False


def _is_var_or_elems(node: nodes.Node, varname: str, key: str | None = None) -> bool:
    """``varname`` (or ``varname[key]``) itself, filtered, tested or sliced."""
    if isinstance(node, nodes.Filter):
        return node.node is not None and _is_var_or_elems(node.node, varname, key)
    if isinstance(node, nodes.Test):
        return _is_var_or_elems(node.node, varname, key)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Slice):
        return _is_var_or_elems(node.node, varname, key)
    return _is_attr(node, varname, key) if key else _is_var(node, varname)


def _names_assigned_from(root: nodes.Template, varname: str) -> Iterator[str]:
    """``varname`` and every variable assigned from it (transitively), breadth first."""
    yield varname
    related = deque([varname])
    while related:
        current = related.popleft()
        for assign in root.find_all(nodes.Assign):
            if _is_var_or_elems(assign.node, current):
                target = assign.target
                if not isinstance(target, nodes.Name):
                    raise TypeError("an assignment from the messages to a tuple")
                yield target.name
                if target.name != current:
                    related.append(target.name)


def _message_loop_names(root: nodes.Template) -> Iterator[str]:
    """The loop variables of ``for`` loops over the messages."""
    names = list(_names_assigned_from(root, "messages"))
    for loop in root.find_all(nodes.For):
        for varname in names:
            if _is_var_or_elems(loop.iter, varname):
                if not isinstance(loop.target, nodes.Name):
                    raise TypeError("a loop over the messages unpacks its items")
                yield loop.target.name
                break


def _loops_over_content(root: nodes.Template) -> Iterator[nodes.For]:
    """``for`` loops over a message's content, directly or through a macro parameter, or over ``content``."""
    message_names = list(_message_loop_names(root))
    content_params_by_loop: dict[int, set[str]] = {}
    loops_in_macros: set[int] = set()
    for macro in root.find_all(nodes.Macro):
        param_names = {arg.name for arg in macro.args}
        content_params: set[str] = set()
        for call in root.find_all(nodes.Call):
            if isinstance(call.node, nodes.Name) and call.node.name == macro.name:
                for i, arg in enumerate(call.args):
                    if i < len(macro.args) and any(
                        _is_var_or_elems(arg, name, "content") for name in message_names
                    ):
                        content_params.add(macro.args[i].name)
                for kwarg in call.kwargs:
                    if (
                        isinstance(kwarg, nodes.Keyword)
                        and kwarg.key in param_names
                        and any(_is_var_or_elems(kwarg.value, name, "content") for name in message_names)
                    ):
                        content_params.add(kwarg.key)
        for loop in macro.find_all(nodes.For):
            loops_in_macros.add(id(loop))
            if content_params:
                content_params_by_loop[id(loop)] = content_params
    for loop in root.find_all(nodes.For):
        over_content = any(_is_var_or_elems(loop.iter, name, "content") for name in message_names)
        params = content_params_by_loop.get(id(loop))
        if not over_content and isinstance(loop.iter, nodes.Name):
            over_content = (params is not None and loop.iter.name in params) or (
                id(loop) not in loops_in_macros and loop.iter.name == "content"
            )
        if over_content:
            if not isinstance(loop.target, nodes.Name):
                raise TypeError("a loop over content unpacks its items")
            yield loop


def detect_content_format(root: nodes.Template) -> ContentFormat:
    """``openai`` when the template loops over a message's content, else ``string`` (vLLM's ``auto``).

    Where vLLM's walk would fail on an unusual tree (it asserts a loop target is a name), vLLM falls
    back to ``string``; so does this.
    """
    try:
        next(_loops_over_content(root))
    except StopIteration:
        return "string"
    except TypeError:
        return "string"
    return "openai"
