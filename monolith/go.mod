module github.com/mitosis-dev/mitosis/monolith

go 1.26
