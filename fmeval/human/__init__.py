"""Human evaluation by your own raters: rating jobs built from runs, a web app for the raters,
and results written as an ordinary run (so reports, compare and the CI gate read them)."""
