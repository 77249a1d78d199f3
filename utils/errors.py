"""UserError: a mistake the user can fix (bad path, bad config, bad input). Entry points print it as one line."""


class UserError(ValueError):
    pass
