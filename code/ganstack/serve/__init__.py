"""`ganstack serve`: a web page and a JSON API over the trained runs of an output folder."""
