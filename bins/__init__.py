"""Entry points: parse arguments, call the library, print. Import anything below them."""
