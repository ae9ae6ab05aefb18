"""Stage 5, analyse: scoring against labels (evaluate), automated mineralogy of a phase map,
plots and the HTML/Markdown report."""
