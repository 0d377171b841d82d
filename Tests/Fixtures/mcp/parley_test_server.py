"""An MCP server for Parley's tests, on the official Python SDK (the `mcp` package from PyPI):
tools that answer, fail, crash, hang and flood, so the client's handling of each can be checked.

TEST_MCP_PIDFILE: the server writes its pid there at start (the tests look for orphans by it).
TEST_MCP_STARTUP_DELAY: seconds to wait before serving (a server slow to initialize).
"""
import os
import sys
import time

try:
    from mcp.server.mcpserver import MCPServer  # mcp 2.x
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as MCPServer
    from mcp.server.fastmcp.exceptions import ToolError

if os.environ.get("TEST_MCP_PIDFILE"):
    with open(os.environ["TEST_MCP_PIDFILE"], "w") as f:
        f.write(str(os.getpid()))
time.sleep(float(os.environ.get("TEST_MCP_STARTUP_DELAY", "0")))

server = MCPServer("parley-test")


@server.tool()
def echo(text: str) -> str:
    """Returns the text it is given."""
    return "echo: " + text


@server.tool()
def fail(reason: str = "it failed") -> str:
    """Always reports an error (isError, with the reason)."""
    raise ToolError(reason)


@server.tool()
def crash() -> str:
    """The server process exits in the middle of the call."""
    sys.stdout.flush()
    os._exit(3)


@server.tool()
def sleep(seconds: float) -> str:
    """Sleeps, then answers."""
    time.sleep(seconds)
    return f"slept {seconds} s"


@server.tool()
def orphan() -> str:
    """Starts a child in a session of its own that ignores SIGTERM and outlives this server unless
    something ends it (its pid goes to TEST_MCP_PIDFILE + ".child")."""
    import subprocess
    child = subprocess.Popen(["sh", "-c", "trap '' TERM HUP; exec sleep 300"], start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.environ.get("TEST_MCP_PIDFILE"):
        with open(os.environ["TEST_MCP_PIDFILE"] + ".child", "w") as f:
            f.write(str(child.pid))
    return f"started {child.pid}"


@server.tool()
def flood(characters: int) -> str:
    """Answers with this many characters, some of them terminal escape sequences."""
    return ("\x1b]52;c;SGVsbG8=\x07" + "x" * 99) * (characters // 100)


if __name__ == "__main__":
    server.run()
