"""Where configs come from (conf/), what they must look like (schemas) and how they are checked."""
