package wire

//go:generate protoc --go_out=. --go_opt=paths=source_relative wirepb/wire.proto wirepb/mailbox.proto wirepb/sealed.proto wirepb/groups.proto wirepb/mesh.proto wirepb/link.proto wirepb/devsync.proto
