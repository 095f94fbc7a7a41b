"""Run store, reports (HTML, Markdown, JSON), comparison of runs and the CI regression gate."""
