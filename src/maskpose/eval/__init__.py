"""maskpose.eval"""
