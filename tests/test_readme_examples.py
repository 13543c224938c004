# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
import re
from datetime import datetime, timezone
from pathlib import Path

from odoo.tests import HttpCase, tagged

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# Shell variables the examples set from the clock, e.g. NOW=$(date -u +%Y-%m).
DATE_VARIABLE = re.compile(r"^(\w+)=\$\(date -u \+([^)]+)\)$", re.MULTILINE)
CURL = re.compile(
    r'curl -sS "\$ODOO(?P<path>/[^"]*)"[^\n]*(?:\\\n[^\n]*)*?'
    r"(?:<<EOF\n(?P<body>.*?)\nEOF|$)",
    re.DOTALL,
)
VARIABLE = re.compile(r"\$(\w+)")


def readme_examples(text):
    """The README's curl examples, in order: (path, body or None, documented
    answer or None). An example is a ``sh`` block holding one curl command
    (its body in a here-document), right followed by its answer in a ``json``
    block when it documents one."""
    blocks = list(FENCE.finditer(text))
    examples = []
    for block, following in zip(blocks, [*blocks[1:], None], strict=True):
        match = CURL.search(block[2]) if block[1] == "sh" else None
        if not match:
            continue
        answer = None
        if (
            following
            and following[1] == "json"
            and not text[block.end() : following.start()].strip()
        ):
            answer = following[2]
        examples.append((match["path"], match["body"], answer))
    return examples


@tagged("post_install", "-at_install")
class TestReadmeExamples(HttpCase):
    """The requests of the README and of the OpenAPI document, sent as written
    to the demo data, get the answers they document (run in a database with
    demo data, skipped in others)."""

    def _demo_key(self):
        service = self.env.ref(
            "fusion_billing.demo_service_nexacloud", raise_if_not_found=False
        )
        if not service:
            self.skipTest("this database has no demo data")
        return service.generate_api_key("documented examples")

    def test_readme_requests_get_the_documented_answers(self):
        key = self._demo_key()
        text = README.read_text()
        now = datetime.now(timezone.utc)
        variables = {
            name: now.strftime(spec) for name, spec in DATE_VARIABLE.findall(text)
        }
        self.assertIn("NOW", variables)

        def expand(template):
            return VARIABLE.sub(lambda match: variables[match[1]], template)

        examples = readme_examples(text)
        self.assertLessEqual(
            {"/usage", "/usage/openapi.json", "/reconciliation"},
            {path for path, _body, _answer in examples},
        )
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
        }
        for path, body, answer in examples:
            with self.subTest(path=path, body=body):
                if body is None:
                    response = self.url_open(path, headers=headers)
                else:
                    response = self.url_open(path, data=expand(body), headers=headers)
                if answer is None:
                    self.assertEqual(response.status_code, 200)
                    self.assertTrue(response.json())
                    continue
                expected = json.loads(expand(answer))
                self.assertEqual(response.json(), expected)
                self.assertEqual(
                    response.status_code, 200 if expected["status"] == "ok" else 400
                )

    def test_openapi_examples_get_their_documented_answers(self):
        """The served document's batch and month examples, sent as they are,
        get its "mixed" answers."""
        headers = {
            "Authorization": f"Bearer {self._demo_key()}",
            "Content-Type": "application/json",
        }
        document = self.url_open("/usage/openapi.json").json()
        for path, example in (("/usage", "batch"), ("/reconciliation", "month")):
            post = document["paths"][path]["post"]
            request = post["requestBody"]["content"]["application/json"]["examples"]
            answers = post["responses"]["200"]["content"]["application/json"]
            with self.subTest(path=path):
                response = self.url_open(
                    path, data=json.dumps(request[example]["value"]), headers=headers
                )
                self.assertEqual(response.status_code, 200, response.text)
                self.assertEqual(response.json(), answers["examples"]["mixed"]["value"])
