"""What the synthetic agents and customers say, per language and role.

Lines carry no commas or full stops inside: espeak-ng pauses at punctuation, and one utterance should stay one stretch of
speech so truth talk time is what a listener would time. The scorecard's phrase lists (scoring_service/scorecards/) are kept
separately; the tests check that what the generator says it spoke is what the scorer finds.
"""

from __future__ import annotations

VOICES: dict[str, dict[str, list[str]]] = {
    "vi": {"agent": ["vi+f3", "vi-vn-x-south+f2", "vi-vn-x-central+f4"], "customer": ["vi", "vi-vn-x-south", "vi-vn-x-central"]},
    "en": {"agent": ["en-us+f3", "en-gb+f2", "en-us+f4"], "customer": ["en-us", "en-gb", "en-us+m3"]},
}

LINES: dict[str, dict[str, list[str]]] = {
    "vi": {
        "greeting": [
            "Xin chào quý khách cảm ơn quý khách đã gọi đến tổng đài chăm sóc khách hàng",
            "Xin chào em là Lan rất vui được hỗ trợ anh chị hôm nay",
        ],
        "opening": [
            "Chào em tôi muốn hỏi về hóa đơn tháng này",
            "Alo tôi bị mất mạng từ sáng đến giờ",
            "Em ơi tôi muốn đổi gói cước",
        ],
        "agent": [
            "Dạ em xin phép kiểm tra thông tin tài khoản của anh chị",
            "Anh chị vui lòng cho em xin số điện thoại đăng ký",
            "Dạ hệ thống ghi nhận gói cước của anh chị vẫn đang hoạt động",
            "Em sẽ tạo yêu cầu hỗ trợ kỹ thuật ngay bây giờ",
            "Dạ kỹ thuật viên sẽ liên hệ lại trong vòng hai giờ tới",
            "Dạ vâng",
            "Anh chị có thể khởi động lại thiết bị giúp em được không",
            "Dạ khoản phí này là phí thuê bao tháng trước chưa thanh toán",
        ],
        "customer": [
            "Số của tôi là không chín một hai ba bốn năm sáu bảy tám",
            "Vâng tôi hiểu rồi",
            "Khi nào thì xong vậy em",
            "Tôi đã gọi ba lần rồi mà chưa ai giải quyết",
            "Vâng ạ",
            "Tôi khởi động lại rồi mà vẫn không được",
            "Sao tháng này tiền cước cao thế",
        ],
        "empathy": ["Dạ em rất hiểu sự bất tiện của anh chị", "Em thành thật xin lỗi anh chị về sự cố này"],
        "hold": ["Anh chị vui lòng giữ máy trong giây lát để em kiểm tra"],
        "after_hold": ["Cảm ơn anh chị đã chờ máy"],
        "prohibited": ["Đó không phải việc của tôi", "Anh chị tự tìm hiểu đi"],
        "closing": ["Cảm ơn anh chị đã gọi chúc anh chị một ngày tốt lành", "Em cảm ơn anh chị hẹn gặp lại"],
        "bye": ["Cảm ơn em chào em", "Vâng chào em"],
        "filler": ["Vâng tôi hiểu rồi", "Vâng tôi đang nghe đây"],
    },
    "en": {
        "greeting": [
            "Hello thank you for calling customer care my name is Anna how can I help you today",
            "Good morning thank you for calling how may I help you",
        ],
        "opening": [
            "Hi I have a question about my bill this month",
            "Hello my internet has been down since this morning",
            "I would like to change my plan please",
        ],
        "agent": [
            "Let me check your account details for you",
            "Could you please confirm your phone number",
            "I can see that your plan is still active",
            "I will open a support ticket right now",
            "A technician will call you back within two hours",
            "Okay",
            "Could you restart the router for me",
            "This charge is last month's subscription that was not paid",
        ],
        "customer": [
            "My number is zero nine one two three four five six",
            "Okay I understand",
            "How long will that take",
            "I have already called three times about this",
            "Right",
            "I restarted it and it still does not work",
            "Why is my bill so high this month",
        ],
        "empathy": ["I completely understand how frustrating this must be", "I am very sorry for the inconvenience"],
        "hold": ["Could you please hold for a moment while I check"],
        "after_hold": ["Thank you for waiting"],
        "prohibited": ["That is not my problem", "Whatever you say"],
        "closing": ["Thank you for calling have a nice day goodbye", "Thanks for calling us today goodbye"],
        "bye": ["Thank you bye", "Okay bye bye"],
        "filler": ["Okay I understand", "Yes I am still here"],
    },
}
