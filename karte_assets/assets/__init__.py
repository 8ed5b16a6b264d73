"""The loyalty asset graph, one module per stage."""
