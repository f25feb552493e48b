"""Fill a deploy template's ${NAME} placeholders from the environment: render.py TEMPLATE > OUTPUT."""

import os
import string
import sys

if __name__ == "__main__":
    with open(sys.argv[1]) as template:
        sys.stdout.write(string.Template(template.read()).substitute(os.environ))
