"""test_browser.py - the web forms in a real browser (issue 7).

Debian's chromium, headless, driven over the DevTools protocol by cdp.py
(standard library only), against a private intaked with an [http] section.
A person's view: open /forms/contact, type into the fields, click Send, see
the confirmation panel with the case reference, and that case exists; send
it wrong and see the form again (422) with the error summary linking to
each field at fault, each field's own message and what was typed kept; the
complaint form says why it asks for health details and on what lawful
basis.  The pages have no script: nothing may throw or log an error
(console, CSP, parser) on any of them.  Unlike curl, the browser sends the
Origin a real person's browser sends: "null" while the pages carry
Referrer-Policy: no-referrer (Fetch: a POST under no-referrer has Origin
null), which the daemon must accept with the form's token.

Skipped when chromium is not installed (scripts/deps.sh test installs it).
"""

import os
import re
import time
import unittest

import cdp
from harness import ROOT, Intaked, free_port

REF_RE = re.compile(r"^[A-Z]{1,10}-\d{4}-\d{6}-[A-Z0-9]$")

GOOD = {"name": "Jo Bloggs", "email": "jo.bloggs@example.org",
        "subject": "Pothole on Mill Lane",
        "message": "There is a deep pothole outside number 4.\n"
                   "It has been there since Monday."}


def http_daemon():
    d = Intaked()
    d.http_port = free_port()
    d.configure("http", "listen", "127.0.0.1:%d" % d.http_port)
    d.configure("http", "forms", os.path.join(ROOT, "conf", "forms"))
    return d


def url(d, path):
    return "http://127.0.0.1:%d%s" % (d.http_port, path)


@unittest.skipUnless(cdp.find_chromium(),
                     "chromium is not installed (sh scripts/deps.sh test"
                     " installs it)")
class Browser(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = http_daemon()
        cls.d.start()
        try:
            cls.b = cdp.Browser()
            cls.b.__enter__()
        except BaseException:
            cls.d.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.b.__exit__(None, None, None)
        finally:
            cls.d.__exit__(None, None, None)    # stops, checks sanitizers

    def setUp(self):
        self.b.clear()

    def no_page_errors(self):
        # (d) the pages have no script: nothing thrown, nothing logged
        # (console, CSP, a failed load), on any page of the test
        self.assertEqual(self.b.page_errors(), [], "\n".join(self.b.log))

    def send(self, want):
        """Click Send; the next page must come with status WANT."""
        st = self.b.click_and_wait("button[type=submit]")
        method, _, headers = self.b.requests[-1]
        self.assertEqual(st, want, "%s with Origin: %s; the browser got %s:"
                         " %s" % (method, headers.get("Origin"), st,
                                  (self.b.evaluate("document.body.innerText")
                                   or "")[:300]))

    def open(self, form):
        st = self.b.navigate(url(self.d, "/forms/%s" % form))
        self.assertEqual(st, 200)
        self.assertEqual(self.b.evaluate("document.scripts.length"), 0)
        return st

    def summary_links(self):
        return self.b.evaluate(
            "Array.from(document.querySelectorAll("
            "'.govuk-error-summary a')).map(a => [a.getAttribute('href'),"
            " a.innerText])")

    # (a)
    def test_fill_in_and_send(self):
        self.open("contact")
        self.assertEqual(self.b.evaluate("document.title"),
                         "Contact the council")
        # every visible field has a label pointing at it
        unlabelled = self.b.evaluate(
            "Array.from(document.querySelectorAll('main input, main"
            " textarea, main select')).filter(e => e.type !== 'hidden'"
            " && e.id !== 'website' && !document.querySelector("
            "'label[for=\"' + e.id + '\"]')).map(e => e.name)")
        self.assertEqual(unlabelled, [])
        for field, value in GOOD.items():
            self.b.type_text("#" + field, value)
        self.send(201)
        self.assertIn("We have your message", self.b.text("h1"))
        ref = self.b.text("#reference")
        self.assertRegex(ref, REF_RE)
        self.assertEqual(self.b.evaluate("document.title"), "Sent")
        cases = self.d.wait_cases(1)
        mine = [c for c in cases if c["ref"] == ref]
        self.assertEqual(len(mine), 1, cases)
        shown = self.d.ctl("cases", "show", ref, "--json", check=True).stdout
        self.assertIn("deep pothole outside number 4", shown)
        self.assertIn(GOOD["email"], shown)
        self.no_page_errors()

    # (b)
    def test_send_it_wrong(self):
        before = len(self.d.cases())
        self.open("contact")
        self.b.type_text("#name", "Jo Bloggs")
        self.b.type_text("#email", "jo at example dot org")
        self.b.type_text("#phone", "123")
        # subject and message left empty
        self.send(422)
        self.assertTrue(self.b.evaluate("document.title")
                        .startswith("Error: "))
        summary = self.b.evaluate(
            "(() => { const s = document.querySelector("
            "'.govuk-error-summary'); return s && [s.getAttribute('role'),"
            " s.querySelector('h2').innerText]; })()")
        self.assertEqual(summary, ["alert", "There is a problem"])
        links = self.summary_links()
        hrefs = [h for h, _ in links]
        self.assertEqual(sorted(hrefs),
                         sorted(["#email", "#phone", "#subject", "#message"]),
                         links)
        labels = {"#email": "Email address", "#phone": "Phone number",
                  "#subject": "What is it about?", "#message": "Your message"}
        for href, text in links:
            self.assertIn(labels[href], text)
            # each link leads to its field, and the field says what is wrong
            field = href[1:]
            self.assertTrue(self.b.evaluate(
                "document.getElementById(%r) !== null" % field))
            err = self.b.text("#%s-error" % field)
            self.assertIsNotNone(err, field)
            self.assertTrue(err.startswith("Error:"), err)
            self.assertIn(field + "-error", self.b.evaluate(
                "document.getElementById(%r).getAttribute("
                "'aria-describedby')" % field))
            self.assertIn("govuk-form-group--error", self.b.evaluate(
                "document.getElementById(%r).parentElement.className"
                % field))
        self.assertIn("email address", self.b.text("#email-error"))
        self.assertIsNone(self.b.text("#name-error"))
        # following a summary link moves to the field
        self.b.click(".govuk-error-summary a[href='#subject']")
        deadline = time.time() + 5
        while time.time() < deadline:
            if self.b.evaluate("location.hash") == "#subject":
                break
            time.sleep(0.05)
        self.assertEqual(self.b.evaluate("location.hash"), "#subject")
        # what was typed is kept
        self.assertEqual(self.b.value("#name"), "Jo Bloggs")
        self.assertEqual(self.b.value("#email"), "jo at example dot org")
        self.assertEqual(self.b.value("#phone"), "123")
        # put it right on the same page and send again
        self.b.fill("#email", "jo@example.org")
        self.b.fill("#phone", "")
        self.b.type_text("#subject", "Bins not collected")
        self.b.type_text("#message", "Our street was missed on Tuesday.")
        self.send(201)
        self.assertRegex(self.b.text("#reference"), REF_RE)
        self.assertEqual(len(self.d.wait_cases(before + 1)), before + 1)
        self.no_page_errors()

    # (c)
    def test_complaint_says_why_it_asks(self):
        self.open("complaint")
        purpose = self.b.text("#health-purpose")
        self.assertIsNotNone(purpose)
        self.assertIn("Why we ask: To make reasonable adjustments", purpose)
        self.assertIn("Lawful basis: UK GDPR Article 9(2)(g)", purpose)
        self.assertIn("Data Protection Act 2018 Schedule 1", purpose)
        self.assertIn("health-purpose", self.b.evaluate(
            "document.getElementById('health').getAttribute("
            "'aria-describedby')"))
        # shown, not hidden away
        self.assertTrue(self.b.evaluate(
            "document.getElementById('health-purpose').offsetHeight > 0"))
        # the honeypot is not for people
        self.assertEqual(self.b.evaluate(
            "document.querySelector('.intake-honeypot')"
            ".getAttribute('aria-hidden')"), "true")
        # sent half done: the choice made and the name typed are kept
        self.b.fill("#service", "Parks")
        self.b.type_text("#name", "Sam Smith")
        self.send(422)
        hrefs = sorted(h for h, _ in self.summary_links())
        self.assertEqual(hrefs, ["#email", "#outcome", "#what_happened"])
        self.assertEqual(self.b.value("#service"), "Parks")
        self.assertEqual(self.b.value("#name"), "Sam Smith")
        self.no_page_errors()


if __name__ == "__main__":
    unittest.main()
