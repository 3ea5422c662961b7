"""Researcher Markdown rendered to a safe HTML subset."""

from __future__ import annotations

import pytest

from survey.markup import render_markdown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**bold** and *em*", "<p><strong>bold</strong> and <em>em</em></p>\n"),
        ("- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"),
        (
            "[site](https://example.org)",
            '<p><a href="https://example.org" target="_blank" rel="noopener noreferrer">'
            "site</a></p>\n",
        ),
        (
            "[mail](mailto:lab@example.org)",
            '<p><a href="mailto:lab@example.org" target="_blank" rel="noopener noreferrer">'
            "mail</a></p>\n",
        ),
        ("", ""),
        (None, ""),
    ],
)
def test_markdown_renders_the_common_subset(text, expected):
    assert render_markdown(text) == expected


@pytest.mark.parametrize(
    ("text", "forbidden"),
    [
        ("<script>alert(1)</script>", "<script"),
        ('<img src=x onerror="alert(1)">', "<img"),
        ("[x](javascript:alert(1))", 'href="javascript'),
        ("[x](JaVaScRiPt:alert(1))", "href="),
        ("[x](java\tscript:alert(1))", "href="),
        ("[x](data:text/html;base64,PHNjcmlwdD4=)", "href="),
        ("[x](/relative/path)", "href="),
        ("![photo](https://cdn.example.org/a.png)", "<img"),
        ("<a href='https://x'>raw</a>", "<a href='https://x'>"),
    ],
)
def test_markdown_never_lets_script_html_or_outside_images_through(text, forbidden):
    assert forbidden not in render_markdown(text)
