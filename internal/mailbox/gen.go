package mailbox

//go:generate protoc -I ../wire --go_out=../wire --go_opt=paths=source_relative wirepb/mailbox.proto
