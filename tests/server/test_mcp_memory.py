"""The memory tools and resources through an in-process client, in both protocol
generations: the six commands of the memory tool and their errors, scopes, search,
history with show and restore, and the memory:// resources.

Each test has a fresh server on an in-memory database; every interaction is bounded."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import anyio
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from mcp_types import TextResourceContents

from tests.server.mcp_support import call, connect, fail, text_of

pytestmark = pytest.mark.anyio

NOTE = "/memories/notes/today.md"


async def memory(client: Client, **args: Any) -> str:
    """Call the memory tool, which must succeed; its text."""
    result = await client.call_tool("memory", args)
    assert not result.is_error, f"memory({args}) failed: {text_of(result)}"
    assert result.structured_content is None  # plain text, as the memory tool answers
    return text_of(result)


async def read(client: Client, uri: str) -> tuple[str, str | None]:
    """A resource's text and mime type."""
    contents = (await client.read_resource(uri)).contents
    assert len(contents) == 1 and isinstance(contents[0], TextResourceContents)
    return contents[0].text, contents[0].mime_type


# -- the memory tool -----------------------------------------------------------------------
async def test_the_six_commands_answer_as_the_memory_tool_does(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            created = await memory(c, command="create", path=NOTE, file_text="alpha\nbeta\n")
            whole = await memory(c, command="view", path=NOTE)
            tail = await memory(c, command="view", path=NOTE, view_range=[2, -1])
            replaced = await memory(
                c, command="str_replace", path=NOTE, old_str="beta", new_str="gamma"
            )
            inserted = await memory(
                c, command="insert", path=NOTE, insert_line=0, insert_text="# today"
            )
            edited = await memory(c, command="view", path=NOTE)
            listing = await memory(c, command="view", path="/memories")
            moved = await memory(
                c, command="rename", old_path=NOTE, new_path="/memories/archive/day1.md"
            )
            deleted = await memory(c, command="delete", path="/memories/archive")
            empty = await memory(c, command="view", path="/memories")
    assert created == f"File created successfully at: {NOTE}"
    assert (
        whole
        == f"Here's the content of {NOTE} with line numbers:\n     1\talpha\n     2\tbeta\n     3\t"
    )
    assert tail == f"Here's the content of {NOTE} with line numbers:\n     2\tbeta\n     3\t"
    assert replaced == (
        "The memory file has been edited. Here is the snippet showing the change (with line "
        "numbers):\n     1\talpha\n     2\tgamma\n     3\t"
    )
    assert inserted == f"The file {NOTE} has been edited."
    assert edited.endswith("\n     1\t# today\n     2\talpha\n     3\tgamma\n     4\t")
    assert listing == (
        "Here're the files and directories up to 2 levels deep in /memories, excluding hidden "
        "items:\n20B\t/memories\n20B\t/memories/notes/\n20B\t/memories/notes/today.md"
    )
    assert moved == f"Successfully renamed {NOTE} to /memories/archive/day1.md"
    assert deleted == "Successfully deleted /memories/archive"
    assert empty.endswith("items:\n0B\t/memories")


async def test_command_errors_name_the_field_or_say_where_to_look(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            await memory(c, command="create", path=NOTE, file_text="alpha\nalpha\n")
            no_text = await fail(c, "memory", command="create", path="/memories/x.md")
            no_path = await fail(c, "memory", command="view")
            no_new_path = await fail(c, "memory", command="rename", old_path=NOTE)
            exists = await fail(c, "memory", command="create", path=NOTE, file_text="again")
            twice = await fail(
                c, "memory", command="str_replace", path=NOTE, old_str="alpha", new_str="a"
            )
            missing = await fail(c, "memory", command="view", path="/memories/nope.md")
            missing_there = await fail(
                c, "memory", command="delete", path="/memories/nope.md", scope="project:/r"
            )
            outside = await fail(c, "memory", command="view", path="notes.md")
            bad_range = await fail(c, "memory", command="view", path=NOTE, view_range=[1])
            bad_line = await fail(
                c, "memory", command="insert", path=NOTE, insert_line=9, insert_text="x"
            )
            bad_scope = await fail(c, "memory", command="view", path=NOTE, scope="team")
            bad_command = await fail(c, "memory", command="append", path=NOTE)
    assert "`create` needs `file_text`" in no_text
    assert "`view` needs `path`" in no_path
    assert "`rename` needs `new_path`" in no_new_path
    assert f"File {NOTE} already exists" in exists
    assert "Multiple occurrences of old_str `alpha`" in twice and "lines: 1, 2" in twice
    assert "/memories/nope.md does not exist" in missing
    assert "View /memories to list the files, or call memory_search." in missing
    assert "View /memories (scope project:/r) to list the files" in missing_there
    assert "Path must start with /memories" in outside and "/memories/notes.md" in outside
    assert "`view_range` must be two line numbers" in bad_range
    assert "Invalid `insert_line` parameter: 9" in bad_line and "[0, 2]" in bad_line
    assert "unknown scope 'team'" in bad_scope and "project:<key>" in bad_scope
    assert "'view', 'create', 'str_replace', 'insert', 'delete' or 'rename'" in bad_command


async def test_scopes_keep_files_apart(mode: str) -> None:
    project = "project:/home/me/repo"
    with anyio.fail_after(20):
        async with connect(mode) as c:
            await memory(c, command="create", path=NOTE, file_text="global text")
            await memory(c, command="create", path=NOTE, file_text="project text", scope=project)
            in_global = await memory(c, command="view", path=NOTE)
            in_project = await memory(c, command="view", path=NOTE, scope=project)
            await memory(c, command="delete", path=NOTE, scope=project)
            still = await memory(c, command="view", path=NOTE)
            gone = await fail(c, "memory", command="view", path=NOTE, scope=project)
    assert in_global.endswith("1\tglobal text") and in_project.endswith("1\tproject text")
    assert still == in_global
    assert "does not exist" in gone


# -- memory_search -------------------------------------------------------------------------
async def test_search_ranks_hits_and_filters_by_scope_and_prefix(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            await memory(
                c, command="create", path="/memories/db/sqlite.md", file_text="WAL mode for sqlite"
            )
            await memory(
                c, command="create", path="/memories/misc.md", file_text="sqlite is everywhere"
            )
            await memory(
                c,
                command="create",
                path="/memories/db/notes.md",
                file_text="sqlite busy timeout",
                scope="project:/repo",
            )
            everywhere = await call(c, "memory_search", query="sqlite")
            project = await call(c, "memory_search", query="sqlite", scope="project:/repo")
            under_db = await call(c, "memory_search", query="sqlite", prefix="/memories/db")
            phrase = await call(c, "memory_search", query='"busy timeout"')
            one = await call(c, "memory_search", query="sqlite", limit=1)
            bad_limit = await fail(c, "memory_search", query="sqlite", limit=51)
            no_words = await fail(c, "memory_search", query="!!")
    assert {(h["scope"], h["path"]) for h in everywhere["hits"]} == {
        ("global", "/memories/db/sqlite.md"),
        ("global", "/memories/misc.md"),
        ("project:/repo", "/memories/db/notes.md"),
    }
    # the word in the path weighs more: the file named after it comes first
    assert everywhere["hits"][0]["path"] == "/memories/db/sqlite.md"
    scores = [h["score"] for h in everywhere["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert "memory(command='view'" in everywhere["next"]
    assert [(h["scope"], h["path"]) for h in project["hits"]] == [
        ("project:/repo", "/memories/db/notes.md")
    ]
    assert project["hits"][0]["snippet"] == "**sqlite** busy timeout"
    assert {h["path"] for h in under_db["hits"]} == {
        "/memories/db/sqlite.md",
        "/memories/db/notes.md",
    }
    assert [h["path"] for h in phrase["hits"]] == ["/memories/db/notes.md"]
    assert len(one["hits"]) == 1
    assert "limit" in bad_limit
    assert "no words" in no_words


async def test_search_without_hits_suggests_other_words(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            await memory(c, command="create", path=NOTE, file_text="alpha")
            nothing = await call(c, "memory_search", query="zebra")
            elsewhere = await call(c, "memory_search", query="alpha", scope="workflow:w")
            any_word = await call(c, "memory_search", query="zebra alpha")
    assert nothing["hits"] == []
    assert "fewer or other words" in nothing["next"] and "view /memories" in nothing["next"]
    assert elsewhere["hits"] == []
    assert "leave out scope" in elsewhere["next"]
    # no file has both words: files with either are found
    assert [h["path"] for h in any_word["hits"]] == [NOTE]


# -- memory_history ------------------------------------------------------------------------
async def test_history_lists_shows_and_restores_a_deleted_file(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            await memory(c, command="create", path=NOTE, file_text="one")
            await memory(c, command="str_replace", path=NOTE, old_str="one", new_str="two")
            await memory(c, command="create", path="/memories/other.md", file_text="x")
            await memory(c, command="delete", path=NOTE)
            of_note = await call(c, "memory_history", path=NOTE)
            of_all = await call(c, "memory_history")
            latest = await call(c, "memory_history", limit=1)
            shown = await call(c, "memory_history", path=NOTE, rev=1)
            restored = await call(c, "memory_history", path=NOTE, rev=1, restore=True)
            back = await memory(c, command="view", path=NOTE)
            again = await call(c, "memory_history", path=NOTE, rev=2, restore=True)
            newest = await memory(c, command="view", path=NOTE)
    revs = of_note["revisions"]
    assert [(r["rev"], r["op"], r["size"]) for r in revs] == [
        (3, "delete", None),
        (2, "str_replace", 3),
        (1, "create", 3),
    ]
    assert all(r["path"] == NOTE and r["author"] == "client" for r in revs)
    assert revs[0]["at"].endswith("Z") and revs[0]["at"][:2] == "20"
    assert of_note["content"] is None and "restore=true" in of_note["next"]
    assert [(r["path"], r["op"]) for r in of_all["revisions"]] == [
        (NOTE, "delete"),
        ("/memories/other.md", "create"),
        (NOTE, "str_replace"),
        (NOTE, "create"),
    ]
    assert len(latest["revisions"]) == 1
    assert shown["content"] == "one" and shown["revisions"][0]["rev"] == 1
    assert "restore=true" in shown["next"]
    assert [(r["rev"], r["op"], r["detail"]) for r in restored["revisions"]] == [
        (4, "restore", "rev 1")
    ]
    # the file did not exist before the restore: undoing it deletes it
    assert "Restored /memories/notes/today.md to revision 1 as revision 4" in restored["next"]
    assert "memory(command='delete', path='/memories/notes/today.md')" in restored["next"]
    assert back.endswith("1\tone")
    # a restore over a live file: undoing it restores the revision it replaced
    assert "rev=4, restore=true" in again["next"]
    assert newest.endswith("1\ttwo")


async def test_history_of_a_renamed_file_follows_it_back_to_its_earlier_names(mode: str) -> None:
    first, second = "/memories/draft.md", "/memories/notes/plan.md"
    with anyio.fail_after(20):
        async with connect(mode) as c:
            await memory(c, command="create", path=first, file_text="one")
            await memory(c, command="str_replace", path=first, old_str="one", new_str="two")
            await memory(c, command="rename", old_path=first, new_path=second)
            await memory(c, command="rename", old_path=second, new_path=NOTE)
            of_note = await call(c, "memory_history", path=NOTE)
            shown = await call(c, "memory_history", path=first, rev=1)
    assert [(r["path"], r["rev"], r["op"], r["detail"]) for r in of_note["revisions"]] == [
        (NOTE, 1, "rename", second),
        (second, 1, "rename", first),
        (first, 2, "str_replace", None),
        (first, 1, "create", None),
    ]
    assert "earlier name" in of_note["next"]
    assert shown["content"] == "one"


async def test_history_errors_say_what_to_call(mode: str) -> None:
    with anyio.fail_after(20):
        async with connect(mode) as c:
            await memory(c, command="create", path=NOTE, file_text="one")
            await memory(c, command="delete", path=NOTE)
            no_rev = await fail(c, "memory_history", path=NOTE, restore=True)
            unknown = await fail(c, "memory_history", path=NOTE, rev=7)
            deleted = await fail(c, "memory_history", path=NOTE, rev=2, restore=True)
            empty = await call(c, "memory_history", path="/memories/never", scope="workflow:w")
    assert "restore needs `rev`" in no_rev and "memory_history(path=" in no_rev
    assert "has no revision 7" in unknown and "memory_history" in unknown
    assert "left no content" in deleted and "revision before it" in deleted
    assert empty["revisions"] == [] and "memory_search" in empty["next"]


# -- resources -------------------------------------------------------------------------------
async def test_resources_read_files_and_directories_of_each_scope(mode: str) -> None:
    key = quote("/home/me/repo", safe="")
    with anyio.fail_after(20):
        async with connect(mode) as c:
            await memory(c, command="create", path=NOTE, file_text="# Today\n\nalpha\n")
            await memory(c, command="create", path="/memories/notes/raw.txt", file_text="plain")
            await memory(
                c,
                command="create",
                path="/memories/p.md",
                file_text="project notes",
                scope="project:/home/me/repo",
            )
            await memory(
                c, command="create", path="/memories/w.md", file_text="wf", scope="workflow:a b"
            )
            templates = {
                t.uri_template for t in (await c.list_resource_templates()).resource_templates
            }
            nested = await read(c, "memory://memories/notes/today.md")
            plain = await read(c, "memory://memories/notes/raw.txt")
            directory = await read(c, "memory://memories/notes/")
            root = await read(c, "memory://memories")
            project = await read(c, f"memory://project/{key}/memories/p.md")
            project_root = await read(c, f"memory://project/{key}/memories")
            workflow = await read(c, "memory://workflow/a%20b/memories/w.md")
    assert {
        "memory://memories{+path}",
        "memory://project/{key}/memories{+path}",
        "memory://workflow/{name}/memories{+path}",
    } <= templates
    assert nested == ("# Today\n\nalpha\n", "text/markdown")
    assert plain == ("plain", "text/plain")
    assert directory == (
        "Here're the files and directories up to 2 levels deep in /memories/notes, excluding "
        "hidden items:\n20B\t/memories/notes\n5B\t/memories/notes/raw.txt\n"
        "15B\t/memories/notes/today.md",
        "text/plain",
    )
    assert root[0].splitlines()[1:] == [
        "20B\t/memories",
        "20B\t/memories/notes/",
        "5B\t/memories/notes/raw.txt",
        "15B\t/memories/notes/today.md",
    ]
    assert project == ("project notes", "text/markdown")
    assert project_root[0].splitlines()[1:] == ["13B\t/memories", "13B\t/memories/p.md"]
    assert workflow == ("wf", "text/markdown")


async def test_unknown_memory_resources_say_what_to_read(mode: str) -> None:
    key = quote("/r", safe="")
    with anyio.fail_after(20):
        async with connect(mode) as c:
            errors = {}
            for uri in (
                "memory://memories/nope.md",
                f"memory://project/{key}/memories/nope.md",
                "memory://memoriesx/a.md",
            ):
                with pytest.raises(MCPError) as err:
                    await c.read_resource(uri)
                errors[uri] = str(err.value)
    assert (
        "no memory file /memories/nope.md: read memory://memories"
        in errors["memory://memories/nope.md"]
    )
    assert "memory_search" in errors["memory://memories/nope.md"]
    project = errors[f"memory://project/{key}/memories/nope.md"]
    assert "in scope project:/r" in project and f"memory://project/{key}/memories" in project
    assert "not a memory URI" in errors["memory://memoriesx/a.md"]
