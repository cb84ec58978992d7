module kube-workerpool-controller/kwc

go 1.22
