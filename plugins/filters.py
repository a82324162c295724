"""Template filters and globals shipped with tenfra."""
