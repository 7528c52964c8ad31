"""Iris rows the tests send: one of each end of the data set."""

SETOSA = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}
VIRGINICA = {
    "sepal length (cm)": 7.7,
    "sepal width (cm)": 3.0,
    "petal length (cm)": 6.1,
    "petal width (cm)": 2.3,
}
