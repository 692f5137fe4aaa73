"""maskpose.render"""
