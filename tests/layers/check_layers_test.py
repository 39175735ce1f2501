#!/usr/bin/env python3
"""scripts/check_layers.py on small trees planted with one bad include or link each: the check
must fail naming the file, the line and the rule, and pass on the same tree without the plant.

Each tree is built in a temporary directory from the repository's own docs/architecture.md and
src/CMakeLists.txt (the real table and the real targets), plus a few sources written here.

Usage: check_layers_test.py SOURCE_ROOT   (ctest: layers.check_catches_bad_includes)
"""

import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A tree that keeps every rule: one file per kind of allowed include.
CLEAN = {
    "include/hearth/payload.hpp": "#pragma once\n#include <string>\n",
    "src/util/log.hpp": "#pragma once\n#include <hearth/payload.hpp>\n",
    "src/core/config.hpp": '#pragma once\n#include "util/log.hpp"\n',
    "src/hub/hub.hpp": '#pragma once\n#include "core/config.hpp"\n',
    "src/auth/operator_auth.hpp": '#pragma once\n#include "core/config.hpp"\n',
    "src/net/listener.cpp": '#include "core/config.hpp"\n#include <boost/beast/core.hpp>\n',
    "src/frontends/native/native.hpp": '#pragma once\n#include "hub/hub.hpp"\n',
    "src/frontends/native/native.cpp": ('#include "frontends/native/native.hpp"\n'
                                        '#include "native.hpp"\n'
                                        '#include "util/log.hpp"\n'
                                        "#include <boost/asio/steady_timer.hpp>\n"),
    "src/frontends/moonshare/moonshare.hpp": '#pragma once\n#include "auth/operator_auth.hpp"\n',
    "src/app/main.cpp": ('#include "frontends/native/native.hpp"\n'
                         '#include "frontends/moonshare/moonshare.hpp"\n'),
}


class CheckLayers(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="hearth-layers-")
        self.root = Path(self.dir.name)
        for name in ("docs/architecture.md", "src/CMakeLists.txt"):
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, self.root / name)
        for name, text in CLEAN.items():
            self.write(name, text)

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, text):
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def check(self):
        return subprocess.run([sys.executable, str(ROOT / "scripts/check_layers.py"),
                               str(self.root)], capture_output=True, text=True, timeout=60)

    def assert_refused(self, *expected):
        result = self.check()
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        for text in expected:
            self.assertIn(text, result.stdout)
        return result.stdout

    def test_the_clean_tree_passes(self):
        result = self.check()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout, "")

    def test_a_front_end_including_another_is_refused(self):
        self.write("src/frontends/moonshare/moonshare.cpp",
                   '#include "frontends/moonshare/moonshare.hpp"\n'
                   '#include "util/log.hpp"\n'
                   '#include "frontends/native/native.hpp"\n')
        out = self.assert_refused(
            'src/frontends/moonshare/moonshare.cpp:3: #include "frontends/native/native.hpp"',
            "[one front-end may not include another]")
        self.assertEqual(len(out.splitlines()), 1, out)

    def test_a_lower_layer_including_a_higher_one_is_refused(self):
        self.write("src/core/runtime.cpp", '#include "core/config.hpp"\n#include "hub/hub.hpp"\n')
        self.assert_refused('src/core/runtime.cpp:2: #include "hub/hub.hpp"',
                            "src/core includes src/hub, not below it",
                            "[a layer includes only itself and the layers below it]")

    def test_a_sibling_layer_is_not_below(self):
        # hub and auth both sit on core; neither is below the other.
        self.write("src/hub/presence.cpp", '#include "auth/operator_auth.hpp"\n')
        self.assert_refused('src/hub/presence.cpp:1: #include "auth/operator_auth.hpp"',
                            "src/hub includes src/auth")

    def test_an_angle_include_of_a_layer_is_checked_too(self):
        self.write("src/util/strings.cpp", "#include <core/config.hpp>\n")
        self.assert_refused("src/util/strings.cpp:1: #include <core/config.hpp>",
                            "src/util includes src/core")

    def test_a_public_header_including_a_layer_is_refused(self):
        self.write("include/hearth/http.hpp", '#pragma once\n#include "core/config.hpp"\n')
        self.assert_refused('include/hearth/http.hpp:2: #include "core/config.hpp"',
                            "include/hearth includes src/core")

    def test_stream_headers_outside_net_are_refused(self):
        self.write("src/frontends/native/socket.cpp", "#include <boost/asio/ip/tcp.hpp>\n")
        self.write("src/app/server.cpp", "  #  include <boost/beast/http.hpp>\n")
        self.assert_refused(
            "src/frontends/native/socket.cpp:1: #include <boost/asio/ip/tcp.hpp>: "
            "boost/asio/ip/tcp only in src/net [stream headers stay in the network layer]",
            "src/app/server.cpp:1: #include <boost/beast/http.hpp>")

    def test_a_file_outside_every_layer_is_refused(self):
        self.write("src/guild/hall.cpp", '#include "core/config.hpp"\n')
        self.assert_refused("src/guild/hall.cpp:1: belongs to no layer")

    def test_a_link_against_the_chain_is_refused(self):
        cmake = self.root / "src/CMakeLists.txt"
        cmake.write_text(cmake.read_text() + "\n# planted\ntarget_link_libraries(\n"
                         "    hearth_frontend_moonshare PRIVATE hearth_frontend_native)\n"
                         "target_link_libraries(hearth_core PUBLIC hearth_hub)\n")
        lines = cmake.read_text().count("\n")
        self.assert_refused(
            f"src/CMakeLists.txt:{lines - 2}: hearth_frontend_moonshare links "
            "hearth_frontend_native", "[one front-end may not include another]",
            f"src/CMakeLists.txt:{lines}: hearth_core links hearth_hub",
            "[a layer links only the layers below it]")

    def test_a_table_letting_a_front_end_use_another_is_refused(self):
        doc = self.root / "docs/architecture.md"
        text = doc.read_text()
        row = "| `src/frontends/moonshare` | `hearth_frontend_moonshare` | `src/auth` |"
        self.assertIn(row, text)
        doc.write_text(text.replace(row, row[:-1] + ", `src/frontends/native` |"))
        result = self.check()
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn("one front-end may not use another", result.stderr)

    def test_a_missing_table_is_an_error(self):
        (self.root / "docs/architecture.md").write_text("# Architecture\n")
        result = self.check()
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn("layers:begin", result.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        ROOT = Path(sys.argv.pop(1)).resolve()
    unittest.main(verbosity=2)
